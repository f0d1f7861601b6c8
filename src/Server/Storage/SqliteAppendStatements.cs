using System.Text;
using Collab.Engine.Sequencing;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Collab.Server.Storage;

/// <summary>
/// The op log's append path on the writer connection as prepared SQLite statements driven through SQLitePCL's raw API:
/// BEGIN IMMEDIATE, the document row of a first op, one INSERT per op, COMMIT. Microsoft.Data.Sqlite allocated ~1.1 KB
/// per inserted op (a parameter binder per parameter, parameter names converted to UTF-8 on every bind, a data reader,
/// statement enumerators, boxed values, the transaction's hooks), a fifth of everything the server allocated per op
/// (docs/PERFORMANCE.md, "Submit path allocations"); this binds by index from a reused UTF-8 buffer and allocates nothing.
/// </summary>
/// <remarks>
/// Prepared on first use (the tables exist by then: migrations run before the first append) and finalized by
/// <see cref="Dispose"/> before the connection closes. Every method runs under the store's write lock. Errors are thrown
/// as <see cref="SqliteException"/> with SQLite's codes, as Microsoft.Data.Sqlite throws them, so
/// <see cref="StorageErrors.IsTransient"/> classifies them the same way.
/// </remarks>
internal sealed class SqliteAppendStatements(SqliteConnection connection) : IDisposable
{
    private const string InsertOpSql = "INSERT INTO ops (doc_id, version, client_id, client_seq, author, op, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    private const string InsertDocumentSql = "INSERT OR IGNORE INTO documents (id, created_ms) VALUES (?1, ?2)";

    /// <summary>SQLITE_CONSTRAINT_PRIMARYKEY: the (doc_id, version) fence.</summary>
    private const int ConstraintPrimaryKey = 1555;

    private readonly sqlite3 _db = connection.Handle ?? throw new InvalidOperationException("The writer connection is not open.");
    private sqlite3_stmt? _begin;
    private sqlite3_stmt? _commit;
    private sqlite3_stmt? _rollback;
    private sqlite3_stmt? _insertOp;
    private sqlite3_stmt? _insertDocument;
    private byte[] _utf8 = new byte[256];

    /// <summary>True while a transaction begun here (or anywhere on the connection) is open.</summary>
    public bool InTransaction => raw.sqlite3_get_autocommit(_db) == 0;

    public void Begin() => Run(_begin ??= Prepare("BEGIN IMMEDIATE"));

    public void Commit() => Run(_commit ??= Prepare("COMMIT"));

    /// <summary>Rolls back the open transaction, if any (a failed COMMIT may already have ended it).</summary>
    public void Rollback()
    {
        if (InTransaction)
        {
            Run(_rollback ??= Prepare("ROLLBACK"));
        }
    }

    /// <summary>Inserts one op (and its document's row for version 1); false when (doc, version) already exists.</summary>
    public bool TryInsert(in OpRecord record)
    {
        if (record.Version == 1)
        {
            // The first op creates the document's row; later ops never need to touch it.
            sqlite3_stmt document = _insertDocument ??= Prepare(InsertDocumentSql);
            BindText(document, 1, record.DocId);
            Check(raw.sqlite3_bind_int64(document, 2, record.TimestampMs));
            Run(document);
        }

        sqlite3_stmt insert = _insertOp ??= Prepare(InsertOpSql);
        BindText(insert, 1, record.DocId);
        Check(raw.sqlite3_bind_int64(insert, 2, record.Version));
        BindText(insert, 3, record.ClientId);
        Check(raw.sqlite3_bind_int64(insert, 4, record.ClientSeq));
        if (record.Author is null)
        {
            Check(raw.sqlite3_bind_null(insert, 5));
        }
        else
        {
            BindText(insert, 5, record.Author);
        }

        // An empty span has no pointer to bind and would store NULL in a NOT NULL column: bind an empty blob instead.
        Check(record.Op.IsEmpty ? raw.sqlite3_bind_zeroblob(insert, 6, 0) : raw.sqlite3_bind_blob(insert, 6, record.Op.Span));
        Check(raw.sqlite3_bind_int64(insert, 7, record.TimestampMs));
        int rc = raw.sqlite3_step(insert);
        raw.sqlite3_reset(insert);
        if (rc == raw.SQLITE_DONE)
        {
            return true;
        }

        if (rc == raw.SQLITE_CONSTRAINT && raw.sqlite3_extended_errcode(_db) == ConstraintPrimaryKey)
        {
            return false;
        }

        SqliteException.ThrowExceptionForRC(rc, _db);
        return false; // unreachable: rc is an error
    }

    public void Dispose()
    {
        _begin?.Dispose();
        _commit?.Dispose();
        _rollback?.Dispose();
        _insertOp?.Dispose();
        _insertDocument?.Dispose();
        _begin = _commit = _rollback = _insertOp = _insertDocument = null;
    }

    private sqlite3_stmt Prepare(string sql)
    {
        int rc = raw.sqlite3_prepare_v2(_db, sql, out sqlite3_stmt statement);
        if (rc != raw.SQLITE_OK)
        {
            statement.Dispose();
            SqliteException.ThrowExceptionForRC(rc, _db);
        }

        return statement;
    }

    /// <summary>Steps a statement that returns no rows, then resets it for its next use.</summary>
    private void Run(sqlite3_stmt statement)
    {
        int rc = raw.sqlite3_step(statement);
        raw.sqlite3_reset(statement);
        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    private void BindText(sqlite3_stmt statement, int index, string value)
    {
        // SQLite copies the bytes (SQLITE_TRANSIENT), so one buffer serves every parameter in turn.
        int max = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (max > _utf8.Length)
        {
            _utf8 = new byte[Math.Max(max, _utf8.Length * 2)];
        }

        int length = Encoding.UTF8.GetBytes(value, _utf8);
        Check(raw.sqlite3_bind_text(statement, index, _utf8.AsSpan(0, length)));
    }

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }
}
