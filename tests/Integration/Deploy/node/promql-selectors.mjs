// Lists the series selectors of PromQL expressions, parsed with Prometheus's own grammar (the one its web UI uses),
// so the tests in tests/Integration/Deploy need no PromQL parser of their own.
// stdin:  [{"id": "...", "expr": "..."}]
// stdout: [{"id": "...", "errors": ["..."], "selectors": [{"name": "...", "text": "...", "matchers": [{"label", "op", "value"}]}]}]
// An expression that does not parse, or a selector that does not name its metric, is reported in "errors".
import { parser } from '@prometheus-io/lezer-promql';

function unquote(literal) {
  // PromQL strings are Go-style: "..." and '...' with escapes, `...` raw.
  if (literal.startsWith('`')) {
    return literal.slice(1, -1);
  }
  const body = literal.slice(1, -1);
  return body.replace(/\\(.)/g, (_, c) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
}

function children(node) {
  const list = [];
  for (let child = node.firstChild; child; child = child.nextSibling) {
    list.push(child);
  }
  return list;
}

function describe(expr) {
  const tree = parser.parse(expr);
  const errors = [];
  const selectors = [];
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) {
        errors.push(`syntax error at ${ref.from}: "${expr.slice(Math.max(0, ref.from - 20), ref.to + 20)}"`);
        return;
      }
      if (ref.name !== 'VectorSelector') {
        return;
      }
      const node = ref.node;
      let name = null;
      const matchers = [];
      for (const child of children(node)) {
        if (child.name === 'Identifier') {
          name = expr.slice(child.from, child.to);
        } else if (child.name === 'LabelMatchers') {
          for (const matcher of children(child)) {
            if (matcher.name !== 'UnquotedLabelMatcher' && matcher.name !== 'QuotedLabelMatcher') {
              continue;
            }
            const parts = children(matcher);
            const label = parts.find(p => p.name === 'LabelName' || p.name === 'QuotedLabelName');
            const op = parts.find(p => p.name === 'MatchOp');
            const value = parts.find(p => p.name === 'StringLiteral');
            if (!label || !op || !value) {
              errors.push(`incomplete label matcher "${expr.slice(matcher.from, matcher.to)}"`);
              continue;
            }
            let labelName = expr.slice(label.from, label.to);
            if (label.name === 'QuotedLabelName') {
              labelName = unquote(labelName);
            }
            matchers.push({ label: labelName, op: expr.slice(op.from, op.to), value: unquote(expr.slice(value.from, value.to)) });
          }
        }
      }
      const byName = matchers.filter(m => m.label === '__name__');
      if (name === null && byName.length === 1 && byName[0].op === '=') {
        name = byName[0].value;
      }
      if (name === null) {
        errors.push(`selector "${expr.slice(node.from, node.to)}" does not name one metric`);
      } else {
        selectors.push({ name, text: expr.slice(node.from, node.to), matchers: matchers.filter(m => m.label !== '__name__') });
      }
    },
  });
  return { errors, selectors };
}

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) {
  input += chunk;
}
const results = JSON.parse(input).map(({ id, expr }) => ({ id, ...describe(expr) }));
process.stdout.write(JSON.stringify(results));
