//! `graphtape ui`: a local, read-only web inspector over a database. The sessions list,
//! a session's timeline (the exported page, fed from JSON endpoints and refreshed as
//! the session grows), an exchange in full, findings, replay divergences and the diff
//! of two sessions.
//!
//! Every request opens its own read-only connection on tokio's blocking pool, so a
//! slow query never stalls the runtime and a recording can write beside it.

pub mod data;
pub(crate) mod pages;
mod routes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

/// Serves the inspector for `db` on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, db: PathBuf, shutdown: impl Future<Output = ()>) {
    let db = Arc::new(db);
    crate::server::serve(
        listener,
        None,
        move |req| routes::handle(db.clone(), req),
        shutdown,
    )
    .await;
}
