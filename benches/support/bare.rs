//! The bare stack: the smallest rouille route that reads one post through r2d2, on
//! rouille's own server (the vendored tiny_http underneath), for W2's baseline. What postd
//! costs beyond it is framework work of ours: routing, problem+json, the access log,
//! validated types, and what its own serving path saves or adds.
//!
//! The bench binary runs it by starting itself again with `POSTD_BENCH_BARE_DB` set.

use r2d2_sqlite::SqliteConnectionManager;
use rouille::{Request, Response};
use std::path::Path;

pub const DB_VAR: &str = "POSTD_BENCH_BARE_DB";

/// Serves `GET /posts/{id}` from `db` on a free loopback port until killed; prints the
/// start-up line the test kit's `ServerProcess` waits for.
pub fn serve(db: &Path, workers: usize) -> ! {
    let manager = SqliteConnectionManager::file(db)
        .with_init(|conn| conn.execute_batch("PRAGMA busy_timeout = 10000;"));
    let pool = r2d2::Pool::builder()
        .max_size(u32::try_from(workers + 2).unwrap_or(u32::MAX))
        .test_on_check_out(false)
        .build(manager)
        .expect("bare stack pool");
    let server = rouille::Server::new("127.0.0.1:0", move |request| one_post(&pool, request))
        .expect("bare stack listens")
        .pool_size(workers);
    println!("bare stack listening on http://{}", server.server_addr());
    server.run();
    std::process::exit(0)
}

fn one_post(pool: &r2d2::Pool<SqliteConnectionManager>, request: &Request) -> Response {
    let Some(id) = request
        .url()
        .strip_prefix("/posts/")
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return Response::empty_404();
    };
    let Ok(conn) = pool.get() else {
        return Response::text("no connection").with_status_code(503);
    };
    let row = conn
        .prepare_cached(
            "SELECT id, author_id, title, slug, body, created_at, updated_at
             FROM active_posts WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([id], |row| {
                Ok(serde_json::json!({
                    "id": row.get::<_, i64>(0)?,
                    "author_id": row.get::<_, i64>(1)?,
                    "title": row.get::<_, String>(2)?,
                    "slug": row.get::<_, String>(3)?,
                    "body": row.get::<_, String>(4)?,
                    "created_at": row.get::<_, String>(5)?,
                    "updated_at": row.get::<_, String>(6)?,
                }))
            })
        });
    match row {
        Ok(post) => Response::from_data("application/json", post.to_string()),
        Err(rusqlite::Error::QueryReturnedNoRows) => Response::empty_404(),
        Err(_) => Response::text("error").with_status_code(500),
    }
}
