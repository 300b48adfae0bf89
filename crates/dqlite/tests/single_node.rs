//! Against one real node started through the crate's own binding.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dqlite::{Client, DbId, Error, ExecResult, Node, Param, StmtId, Value};

/// A started single-node cluster and a client connected to it.
fn single(label: &str) -> Option<(TestNode, Client, DbId)> {
    if !dqlite_available() {
        return None;
    }
    let node = start_node(dqlite::BOOTSTRAP_ID, label);
    let mut client = wait_for_leader(&node.address);
    let db = client.open("test").expect("open");
    Some((node, client, db))
}

fn all_rows(client: &mut Client, db: DbId, sql: &str) -> Vec<Vec<Value>> {
    client
        .query_sql(db, sql, &[])
        .and_then(|rows| rows.collect_all())
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .rows
}

fn ints(rows: &[Vec<Value>]) -> Vec<Option<i64>> {
    rows.iter().map(|r| r[0].as_i64()).collect()
}

#[test]
fn every_value_type_round_trips() {
    let Some((_node, mut c, db)) = single("types") else {
        return;
    };
    c.exec_sql(
        db,
        "CREATE TABLE v (i INTEGER, f REAL, t TEXT, b BLOB, n TEXT, flag BOOLEAN, \
         ts DATETIME, day DATE)",
        &[],
    )
    .unwrap();
    let insert = c
        .prepare(db, "INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .unwrap();
    assert_eq!(insert.params, 8);
    let blob: Vec<u8> = (0..=255).collect();
    let text = "héllo, wörld ✓ — with 'quotes'";
    let result = c
        .exec(
            db,
            insert.id,
            &[
                Param::Integer(i64::MIN),
                Param::Float(-2.5e-300),
                Param::Text(text),
                Param::Blob(&blob),
                Param::Null,
                Param::Boolean(true),
                Param::Iso8601("2024-01-02 03:04:05"),
                Param::Integer(1_700_000_000),
            ],
        )
        .unwrap();
    assert_eq!(
        result,
        ExecResult {
            last_insert_id: 1,
            rows_affected: 1
        }
    );
    // Owned values bind too, and NULL in the typed columns decodes per
    // dqlite's rules: NULL DATETIME is Null, NULL BOOLEAN is false.
    let owned = [
        Value::Integer(i64::MAX),
        Value::Float(0.0),
        Value::Text(String::new()),
        Value::Blob(Vec::new()),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    let params: Vec<Param<'_>> = owned.iter().map(Value::as_param).collect();
    assert_eq!(c.exec(db, insert.id, &params).unwrap().last_insert_id, 2);
    c.finalize(db, insert.id).unwrap();

    let select = c.prepare(db, "SELECT * FROM v WHERE rowid = ?").unwrap();
    let first = c
        .query(db, select.id, &[Param::Integer(1)])
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(
        first.columns,
        ["i", "f", "t", "b", "n", "flag", "ts", "day"]
    );
    assert_eq!(
        first.rows,
        [vec![
            Value::Integer(i64::MIN),
            Value::Float(-2.5e-300),
            Value::Text(text.into()),
            Value::Blob(blob.clone()),
            Value::Null,
            Value::Boolean(true),
            Value::Iso8601("2024-01-02 03:04:05".into()),
            Value::UnixTime(1_700_000_000),
        ]]
    );
    let second = c
        .query(db, select.id, &[Param::Integer(2)])
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(
        second.rows,
        [vec![
            Value::Integer(i64::MAX),
            Value::Float(0.0),
            Value::Text(String::new()),
            Value::Blob(Vec::new()),
            Value::Null,
            Value::Boolean(false),
            Value::Null,
            Value::Null,
        ]]
    );
    c.finalize(db, select.id).unwrap();

    // Text parameters with NUL cannot travel; nothing is sent.
    let err = c
        .exec_sql(db, "SELECT ?", &[Param::Text("a\0b")])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert!(!c.is_broken());
}

#[test]
fn multi_statement_exec_sql() {
    let Some((_node, mut c, db)) = single("multi") else {
        return;
    };
    // Every statement runs; the result is the last one's.
    let r = c
        .exec_sql(
            db,
            "CREATE TABLE a (x INTEGER UNIQUE); INSERT INTO a VALUES (1); \
             INSERT INTO a VALUES (2), (3)",
            &[],
        )
        .unwrap();
    assert_eq!(r.rows_affected, 2);
    assert_eq!(r.last_insert_id, 3);
    // Whitespace after the last ';' makes dqlite 1.11 report zeros.
    let r = c.exec_sql(db, "INSERT INTO a VALUES (4);\n", &[]).unwrap();
    assert_eq!(r, ExecResult::default());
    // Parameters bind to the first statement; later ones see NULL.
    c.exec_sql(
        db,
        "INSERT INTO a VALUES (?); INSERT INTO a VALUES (?)",
        &[Param::Integer(7)],
    )
    .unwrap();
    // A failure stops the rest but keeps what ran before it.
    let err = c
        .exec_sql(
            db,
            "INSERT INTO a VALUES (8); INSERT INTO a VALUES (1); INSERT INTO a VALUES (9)",
            &[],
        )
        .unwrap_err();
    assert_eq!(err.primary_code(), Some(19), "{err}");
    let rows = all_rows(&mut c, db, "SELECT x FROM a ORDER BY x IS NULL, x");
    assert_eq!(
        ints(&rows),
        [Some(1), Some(2), Some(3), Some(4), Some(7), Some(8), None]
    );
    // Empty text is a no-op.
    assert_eq!(c.exec_sql(db, "  ", &[]).unwrap(), ExecResult::default());
}

#[test]
fn transactions_and_savepoints() {
    let Some((_node, mut c, db)) = single("tx") else {
        return;
    };
    c.exec_sql(db, "CREATE TABLE t (x INTEGER)", &[]).unwrap();
    for sql in [
        "BEGIN IMMEDIATE",
        "INSERT INTO t VALUES (1)",
        "SAVEPOINT sp",
        "INSERT INTO t VALUES (2)",
        "ROLLBACK TO sp",
        "INSERT INTO t VALUES (3)",
        "RELEASE sp",
        "COMMIT",
    ] {
        c.exec_sql(db, sql, &[])
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
    c.exec_sql(db, "BEGIN; INSERT INTO t VALUES (4); ROLLBACK", &[])
        .unwrap();
    let rows = all_rows(&mut c, db, "SELECT x FROM t ORDER BY x");
    assert_eq!(ints(&rows), [Some(1), Some(3)]);
}

#[test]
fn constraint_violation_reports_extended_code() {
    let Some((_node, mut c, db)) = single("unique") else {
        return;
    };
    c.exec_sql(
        db,
        "CREATE TABLE u (id INTEGER PRIMARY KEY, k TEXT UNIQUE)",
        &[],
    )
    .unwrap();
    c.exec_sql(db, "INSERT INTO u VALUES (1, 'a')", &[])
        .unwrap();
    let err = c
        .exec_sql(db, "INSERT INTO u VALUES (2, 'a')", &[])
        .unwrap_err();
    match &err {
        Error::Server { code, message } => {
            assert_eq!(*code, 2067, "SQLITE_CONSTRAINT_UNIQUE");
            assert!(message.contains("UNIQUE constraint failed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_busy() && !err.is_not_leader());
    let err = c
        .exec_sql(db, "INSERT INTO u VALUES (1, 'b')", &[])
        .unwrap_err();
    assert_eq!(err.primary_code(), Some(19));
    assert!(
        matches!(err, Error::Server { code: 1555, .. }),
        "SQLITE_CONSTRAINT_PRIMARYKEY: {err}"
    );
    assert!(!c.is_broken());
}

#[test]
fn second_writer_fails_busy_at_once() {
    let Some((node, mut a, db_a)) = single("busy") else {
        return;
    };
    a.exec_sql(db_a, "CREATE TABLE t (x)", &[]).unwrap();
    let mut b = Client::connect(&node.address, TIMEOUT).unwrap();
    let db_b = b.open("test").unwrap();

    a.exec_sql(db_a, "BEGIN IMMEDIATE", &[]).unwrap();
    let started = Instant::now();
    let err = b.exec_sql(db_b, "BEGIN IMMEDIATE", &[]).unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert_eq!(err.primary_code(), Some(5));
    assert!(started.elapsed() < Duration::from_secs(1), "no busy wait");
    // A deferred BEGIN succeeds; its first write is what fails.
    b.exec_sql(db_b, "BEGIN", &[]).unwrap();
    let err = b
        .exec_sql(db_b, "INSERT INTO t VALUES (1)", &[])
        .unwrap_err();
    assert!(err.is_busy(), "{err}");
    b.exec_sql(db_b, "ROLLBACK", &[]).unwrap();

    a.exec_sql(db_a, "INSERT INTO t VALUES (1); COMMIT", &[])
        .unwrap();
    b.exec_sql(
        db_b,
        "BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT",
        &[],
    )
    .unwrap();
    assert_eq!(
        ints(&all_rows(&mut a, db_a, "SELECT count(*) FROM t")),
        [Some(2)]
    );
}

const BIG: i64 = 200_000;

fn fill_big(c: &mut Client, db: DbId) {
    // Separate calls: parameters would bind to the CREATE otherwise.
    c.exec_sql(db, "CREATE TABLE big (n INTEGER PRIMARY KEY, s TEXT)", &[])
        .unwrap();
    c.exec_sql(
        db,
        "INSERT INTO big (n, s) \
           WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
           SELECT x, 'row ' || x FROM c",
        &[Param::Integer(BIG)],
    )
    .unwrap();
}

#[test]
fn large_query_streams_in_batches() {
    let Some((_node, mut c, db)) = single("big") else {
        return;
    };
    fill_big(&mut c, db);
    let mut rows = c
        .query_sql(db, "SELECT n, s FROM big ORDER BY n", &[])
        .unwrap();
    let mut count = 0i64;
    let mut sum = 0i64;
    while let Some(row) = rows.next_row().unwrap() {
        count += 1;
        let n = row[0].as_i64().unwrap();
        assert_eq!(n, count);
        if n == 1 {
            // The first row is usable before the rest was sent.
            assert_eq!(rows.batches(), 1);
        }
        if n % 50_000 == 0 {
            assert_eq!(row[1].as_str(), Some(format!("row {n}").as_str()));
        }
        sum += n;
    }
    assert_eq!(count, BIG);
    assert_eq!(sum, BIG * (BIG + 1) / 2);
    let batches = rows.batches();
    drop(rows);
    // ~4 KiB batches: hundreds of them, each decoded and dropped in turn.
    assert!(batches > 100, "only {batches} batches");
    println!("{BIG} rows arrived in {batches} batches");
}

/// An answer of several ~4 KiB batches comes back in well under the 40 ms a
/// delayed acknowledgement would hold its second batch for (Nagle's algorithm
/// on the server's socket; the client asks for quick acknowledgements).
#[test]
fn answers_of_several_batches_come_without_a_delayed_ack() {
    let Some((_node, mut c, db)) = single("quickack") else {
        return;
    };
    c.exec_sql(db, "CREATE TABLE page (s TEXT)", &[]).unwrap();
    let text = "x".repeat(1_500);
    for _ in 0..20 {
        c.exec_sql(db, "INSERT INTO page VALUES (?)", &[Param::Text(&text)])
            .unwrap();
    }
    let stmt = c.prepare(db, "SELECT s FROM page").unwrap();
    let mut took: Vec<Duration> = (0..11)
        .map(|_| {
            let start = Instant::now();
            let rows = c.query(db, stmt.id, &[]).unwrap();
            let all = rows.collect_all().unwrap();
            assert_eq!(all.rows.len(), 20);
            start.elapsed()
        })
        .collect();
    took.sort();
    let median = took[took.len() / 2];
    // 44 ms each without quick acknowledgements, ~0.1 ms with them.
    assert!(
        median < Duration::from_millis(20),
        "20 rows of 1.5 KiB took {median:?} (median of 11)"
    );
}

#[test]
fn abandoned_streams_leave_the_connection_usable() {
    let Some((node, mut c, db)) = single("abandon") else {
        return;
    };
    fill_big(&mut c, db);
    {
        let mut rows = c.query_sql(db, "SELECT n FROM big", &[]).unwrap();
        for _ in 0..10 {
            rows.next_row().unwrap().unwrap();
        }
        // Dropped here: interrupt + drain.
    }
    assert!(!c.is_broken());
    assert_eq!(
        ints(&all_rows(&mut c, db, "SELECT count(*) FROM big")),
        [Some(BIG)]
    );

    let mut rows = c.query_sql(db, "SELECT n FROM big", &[]).unwrap();
    rows.next_row().unwrap().unwrap();
    rows.interrupt().unwrap();
    c.exec_sql(db, "INSERT INTO big (s) VALUES ('after')", &[])
        .unwrap();

    // A leaked stream is drained before the next request.
    let mut rows = c.query_sql(db, "SELECT n FROM big", &[]).unwrap();
    rows.next_row().unwrap().unwrap();
    std::mem::forget(rows);
    assert_eq!(
        ints(&all_rows(&mut c, db, "SELECT count(*) FROM big")),
        [Some(BIG + 1)]
    );

    // Interrupting an idle connection is a harmless round trip.
    c.interrupt(db).unwrap();

    // Abandoning closes the connection at once.
    let rows = c.query_sql(db, "SELECT n FROM big", &[]).unwrap();
    rows.abandon();
    assert!(c.is_broken());
    assert!(matches!(c.leader(), Err(Error::Io(_))));
    let mut fresh = Client::connect(&node.address, TIMEOUT).unwrap();
    let db = fresh.open("test").unwrap();
    assert_eq!(
        ints(&all_rows(&mut fresh, db, "SELECT count(*) FROM big")),
        [Some(BIG + 1)]
    );
}

#[test]
fn finalize_frees_the_statement() {
    let Some((_node, mut c, db)) = single("finalize") else {
        return;
    };
    let stmt = c.prepare(db, "SELECT 1").unwrap();
    assert_eq!(stmt.params, 0);
    assert_eq!(
        c.query(db, stmt.id, &[])
            .unwrap()
            .collect_all()
            .unwrap()
            .rows,
        [vec![Value::Integer(1)]]
    );
    c.finalize(db, stmt.id).unwrap();
    let err = c.query(db, stmt.id, &[]).unwrap_err();
    assert_eq!(err.primary_code(), Some(12), "{err}");
    let err = c.finalize(db, StmtId(999)).unwrap_err();
    assert!(err.to_string().contains("no statement"), "{err}");
    // One database per connection.
    let err = c.open("other").unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(!c.is_broken());
}

#[test]
fn dump_is_readable_by_stock_sqlite() {
    let Some((_node, mut c, db)) = single("dump") else {
        return;
    };
    c.exec_sql(
        db,
        "CREATE TABLE d (x INTEGER, y TEXT); \
         INSERT INTO d WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
           WHERE x < 1000) SELECT x, 'v' || x FROM c",
        &[],
    )
    .unwrap();
    let files = c.dump("test").unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["test", "test-wal"]);
    assert!(files[0].data.starts_with(b"SQLite format 3\0"));
    assert_eq!(files[0].data.len() % 4096, 0);

    let dir = TempDir::new("dumped");
    for f in &files {
        std::fs::write(dir.path().join(&f.name), &f.data).unwrap();
    }
    let db_path = dir.path().join("test");
    match std::process::Command::new("sqlite3")
        .arg(&db_path)
        .arg("PRAGMA integrity_check; SELECT count(*), sum(x) FROM d;")
        .output()
    {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(stdout.trim(), "ok\n1000|500500");
        }
        Err(_) => println!("sqlite3 CLI not installed: checked the file header only"),
    }
    // An unknown database dumps as two empty files.
    let files = c.dump("missing").unwrap();
    assert!(files.iter().all(|f| f.data.is_empty()));
}

#[test]
fn pragmas_and_refused_statements() {
    let Some((_node, mut c, db)) = single("pragma") else {
        return;
    };
    c.exec_sql(db, "CREATE TABLE p (a INTEGER PRIMARY KEY, b TEXT)", &[])
        .unwrap();
    assert_eq!(
        all_rows(&mut c, db, "PRAGMA journal_mode"),
        [vec![Value::Text("wal".into())]]
    );
    assert_eq!(all_rows(&mut c, db, "PRAGMA table_info(p)").len(), 2);
    c.exec_sql(db, "PRAGMA foreign_keys = ON; PRAGMA user_version = 7", &[])
        .unwrap();
    assert_eq!(
        ints(&all_rows(&mut c, db, "PRAGMA foreign_keys")),
        [Some(1)]
    );
    assert_eq!(
        ints(&all_rows(&mut c, db, "PRAGMA user_version")),
        [Some(7)]
    );
    assert_eq!(
        all_rows(&mut c, db, "PRAGMA integrity_check"),
        [vec![Value::Text("ok".into())]]
    );

    // Rows through exec: code 100, nothing applied.
    let err = c
        .exec_sql(db, "INSERT INTO p (b) VALUES ('x') RETURNING a", &[])
        .unwrap_err();
    assert_eq!(err.primary_code(), Some(100), "{err}");
    assert_eq!(
        ints(&all_rows(&mut c, db, "SELECT count(*) FROM p")),
        [Some(0)]
    );
    // No columns through query: code 1, nothing run.
    let err = c.query_sql(db, "CREATE TABLE q (a)", &[]).unwrap_err();
    assert_eq!(err.primary_code(), Some(1), "{err}");
    // Only the first statement of a query runs.
    assert_eq!(ints(&all_rows(&mut c, db, "SELECT 1; SELECT 2")), [Some(1)]);

    // Statements that abort a 1.11 server are refused before sending.
    for sql in ["VACUUM", "PRAGMA journal_mode = DELETE"] {
        let err = c.exec_sql(db, sql, &[]).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{sql}: {err}");
    }
    let err = c
        .query_sql(db, "INSERT INTO p (b) VALUES ('x') RETURNING a", &[])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let stmt = c
        .prepare(db, "DELETE FROM p WHERE a = ? RETURNING b")
        .unwrap();
    assert!(matches!(
        c.query(db, stmt.id, &[Param::Integer(1)]),
        Err(Error::InvalidInput(_))
    ));
    c.finalize(db, stmt.id).unwrap();
    // The node survived all of it.
    assert_eq!(ints(&all_rows(&mut c, db, "SELECT 42")), [Some(42)]);
}

#[test]
fn node_binding() {
    if !dqlite_available() {
        return;
    }
    fn assert_send<T: Send>() {}
    assert_send::<Node>();

    let version = dqlite::node::version_number().unwrap();
    assert!(version >= 10_000, "{version}");
    let a = dqlite::node::generate_node_id("127.0.0.1:1").unwrap();
    let b = dqlite::node::generate_node_id("127.0.0.1:1").unwrap();
    assert!(a != 0 && a != b);

    // Start without a bind address: the creation address is bound.
    let mut node = start_node(1, "binding");
    assert_eq!(
        node.node.bind_address().as_deref(),
        Some(node.address.as_str())
    );
    assert!(node.node.is_running());
    assert!(
        node.node.set_snapshot_params(10, 20).is_err(),
        "options after start"
    );
    {
        let mut c = wait_for_leader(&node.address);
        assert_eq!(c.leader().unwrap().unwrap().id, 1);
        let db = c.open("keep").unwrap();
        c.exec_sql(db, "CREATE TABLE k (x); INSERT INTO k VALUES (41)", &[])
            .unwrap();
        assert_eq!(c.cluster().unwrap().len(), 1);
        let meta = c.describe().unwrap();
        c.set_weight(meta.weight + 3).unwrap();
        assert_eq!(c.describe().unwrap().weight, meta.weight + 3);
    }
    node.node.stop().unwrap();
    assert!(node.node.stop().is_err());
    assert!(node.node.start().is_err(), "no restart of a stopped node");

    // A new node on the same directory restarts the cluster with its data;
    // bootstrapping again is skipped.
    let mut again = Node::new(1, &node.address, node.dir.path()).unwrap();
    again.set_snapshot_params(64, 128).unwrap();
    again.set_network_latency(LATENCY).unwrap();
    again.start().unwrap();
    let mut c = wait_for_leader(&node.address);
    let db = c.open("keep").unwrap();
    assert_eq!(
        ints(&all_rows(&mut c, db, "SELECT x + 1 FROM k")),
        [Some(42)]
    );
    drop(c);
    drop(again);

    // Forcing the membership (disaster recovery) before a restart.
    let mut recovered = Node::new(1, &node.address, node.dir.path()).unwrap();
    recovered.recover(&[(1, node.address.as_str())]).unwrap();
    recovered.set_network_latency(LATENCY).unwrap();
    recovered.start().unwrap();
    let mut c = wait_for_leader(&node.address);
    assert_eq!(c.cluster().unwrap().len(), 1);
    drop(c);
    drop(recovered);

    // Port 0 binds, but dqlite reports the address as given, not the port.
    let dir = TempDir::new("port0");
    let mut zero = Node::new(7, "127.0.0.1:0", dir.path()).unwrap();
    zero.set_bind_address("127.0.0.1:0").unwrap();
    assert_eq!(zero.bind_address().as_deref(), Some("127.0.0.1:0"));
    drop(zero);

    assert!(matches!(
        Node::new(0, "127.0.0.1:1", dir.path()),
        Err(Error::InvalidInput(_))
    ));
    let mut bad = Node::new(3, "127.0.0.1:1", dir.path()).unwrap();
    assert!(bad.set_network_latency(Duration::ZERO).is_err());
    assert!(bad.set_snapshot_params(100, 2).is_err());
    assert!(bad.set_bind_address("not an address").is_err());
}
