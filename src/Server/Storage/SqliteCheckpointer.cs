using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Collab.Server.Storage;

/// <summary>
/// Copies the SQLite write-ahead log back into the database file on a thread and connection of its own, so that the
/// commit path (and every ack waiting on it) never pays for a checkpoint.
/// </summary>
/// <remarks>
/// <para>SQLite's automatic checkpoint runs inside the commit that pushes the WAL past 1,000 pages: that commit copies
/// the pages into the database file and fsyncs it. Appends to many documents dirty a B-tree page each, so the small-rooms
/// load test wrote about 4 KB of WAL per op (30 MB/s at 10,000 ops/s) and checkpointed every ~130 ms, each time
/// stalling the group commit; with checkpoints off the commit path ack p99 fell from 60–120 ms to about 35 ms. A round
/// runs after <see cref="OpsPerCheckpoint"/> committed ops or <see cref="StorageOptions.SqliteCheckpointInterval"/>,
/// whichever comes first, and never when nothing was committed.</para>
/// <para>A PASSIVE checkpoint never blocks the writer, but under a steady stream of commits it rarely catches the log
/// with no frame appended since it started, and SQLite only rewinds the WAL to its start after a checkpoint that
/// copied everything. So once the log passes <see cref="StorageOptions.SqliteWalRestartBytes"/>, this thread asks the
/// writer for a RESTART checkpoint (<see cref="TakeRestartDue"/>), which the writer runs between two commits: it copies
/// the little the passive runs left and makes the next commit start the log over, so the WAL file stays bounded. Run
/// here instead, it would meet the writer's lock: the writer would get SQLITE_BUSY and sleep in SQLite's busy handler
/// (whose back-off slept tens of milliseconds past the checkpoint in the load test), or a busy writer would starve it.</para>
/// </remarks>
internal sealed class SqliteCheckpointer : IDisposable
{
    /// <summary>
    /// Ops committed since the last checkpoint that trigger the next one before the interval is up. Appends spread over
    /// many documents dirty about a page per op, and a round copies each dirty page once however often it changed, so
    /// rounds far apart copy fewer pages per op: at 1,000 ops (SQLite's own automatic checkpoint is every 1,000 pages)
    /// the checkpoint thread took 4.3 % of the server's samples at 10,000 ops/s in small rooms, at 10,000 ops 0.7 %
    /// (docs/PERFORMANCE.md, "Small rooms: where the CPU per op goes"). At 10,000 ops/s this checkpoints
    /// about once a second (up to ~40 MB of log, below the restart size), at light load once per interval, and an
    /// idle store not at all. A fixed 100 ms period checkpointed ten times a second even at light load, and each round
    /// fsyncs the database file, which a commit's WAL fsync may queue behind (one A/B pair at 1,000 ops/s: ack p90
    /// 1.0 ms with a round per second, 2.3 ms with one every 100 ms).
    /// </summary>
    internal const int OpsPerCheckpoint = 10_000;

    private readonly string _connectionString;
    private readonly TimeSpan _interval;
    private readonly long _restartBytes;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly Lock _gate = new(); // the connection is used by one checkpoint at a time
    private readonly AutoResetEvent _due = new(initialState: false);
    private long _opsSinceCheckpoint;
    private SqliteConnection? _connection;
    private long _restartFrames;
    private long _checkpoints;
    private int _restartDue;

    public SqliteCheckpointer(string connectionString, TimeSpan interval, long restartBytes, ILogger logger)
    {
        _connectionString = connectionString;
        _interval = interval;
        _restartBytes = restartBytes;
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = "collab-sqlite-checkpoint" };
        _thread.Start();
    }

    /// <summary>Checkpoints run so far (tests).</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>Called by the writer after each commit: enough ops since the last checkpoint start the next one now.</summary>
    public void OnCommitted(int ops)
    {
        if (Interlocked.Add(ref _opsSinceCheckpoint, ops) >= OpsPerCheckpoint)
        {
            _due.Set();
        }
    }

    /// <summary>
    /// True once, after a checkpoint found the log past the restart size: the writer then runs
    /// <c>PRAGMA wal_checkpoint(RESTART)</c> on its own connection before its next transaction.
    /// </summary>
    public bool TakeRestartDue() => Interlocked.Exchange(ref _restartDue, 0) == 1;

    public void Dispose()
    {
        _stop.Cancel();
        _thread.Join();
        lock (_gate)
        {
            _connection?.Dispose();
            _connection = null;
        }

        _stop.Dispose();
        _due.Dispose();
    }

    private void Run()
    {
        WaitHandle[] wakeUps = [_stop.Token.WaitHandle, _due];
        while (WaitHandle.WaitAny(wakeUps, _interval) != 0)
        {
            if (Interlocked.Exchange(ref _opsSinceCheckpoint, 0) == 0)
            {
                continue; // nothing committed since the last round: the log has nothing new to copy
            }

            try
            {
                CheckpointOnce();
            }
            catch (SqliteException ex)
            {
                // Nothing is lost: the frames stay in the log and the next round copies them. Reopen in case the
                // connection itself is broken.
                StorageLog.CheckpointFailed(_logger, _interval, ex);
                lock (_gate)
                {
                    _connection?.Dispose();
                    _connection = null;
                }
            }
        }
    }

    /// <summary>Runs one round now, on the caller's thread (tests drive the checkpointer deterministically with it).</summary>
    internal void CheckpointNow() => CheckpointOnce();

    private void CheckpointOnce()
    {
        lock (_gate)
        {
            CheckpointLocked();
        }
    }

    private void CheckpointLocked()
    {
        SqliteConnection connection = EnsureConnection();
        long logFrames = Checkpoint(connection, "PASSIVE");
        Interlocked.Increment(ref _checkpoints);
        if (logFrames >= _restartFrames)
        {
            Volatile.Write(ref _restartDue, 1);
        }
    }

    /// <summary>Runs one checkpoint; returns the log's size in frames as SQLite reports it.</summary>
    internal static long Checkpoint(SqliteConnection connection, string mode)
    {
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = $"PRAGMA wal_checkpoint({mode})";
        using SqliteDataReader reader = command.ExecuteReader();
        return reader.Read() ? reader.GetInt64(1) : 0; // columns: busy, log frames, checkpointed frames
    }

    private SqliteConnection EnsureConnection()
    {
        if (_connection is not null)
        {
            return _connection;
        }

        var connection = new SqliteConnection(_connectionString);
        try
        {
            connection.Open();
            using SqliteCommand pageSize = connection.CreateCommand();
            pageSize.CommandText = "PRAGMA page_size";
            long bytesPerPage = Convert.ToInt64(pageSize.ExecuteScalar(), CultureInfo.InvariantCulture);
            _restartFrames = Math.Max(1, _restartBytes / Math.Max(512, bytesPerPage));
        }
        catch
        {
            connection.Dispose();
            throw;
        }

        _connection = connection;
        return connection;
    }
}
