// ShareDB's rich-text type (devDependency, the oracle of rich.test): the parts the test calls.
declare module "rich-text" {
  interface OracleDelta {
    ops: object[];
    length(): number;
  }
  const richText: {
    type: OracleType;
    Delta: new (ops?: object[]) => OracleDelta & { invert(base: OracleDelta): OracleDelta };
  };
  export default richText;
  interface OracleType {
    name: string;
    apply(snapshot: object[] | OracleDelta, delta: object[] | OracleDelta): OracleDelta;
    compose(a: object[] | OracleDelta, b: object[] | OracleDelta): OracleDelta;
    transform(a: object[] | OracleDelta, b: object[] | OracleDelta, side: "left" | "right"): OracleDelta;
    transformCursor(cursor: number, delta: OracleDelta, isOwnOp: boolean): number;
    deserialize(ops: object[]): OracleDelta;
  }
}
