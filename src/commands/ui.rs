//! `graphtape ui`: the read-only web inspector, until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::UiArgs;
use crate::server::{bind, listen_url, stop_signal};
use crate::store::open_read_only;

pub fn run(db: &Path, args: &UiArgs) -> anyhow::Result<ExitCode> {
    // Fail now, with the store's message, rather than on the first page view.
    drop(open_read_only(db)?);
    let (listener, addr) = bind(args.listen, "--listen")?;
    warn_if_exposed(addr);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening ui={}", listen_url(addr, false))?;
        out.flush()?;
        drop(out);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::ui::serve(listener, db.to_path_buf(), async {
            let _ = stop_rx.await;
        }));
        stop_signal().await?;
        drop(stop_tx);
        server.await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The inspector shows recorded traffic, which can hold personal data: say so when it
/// is reachable from other machines.
pub(crate) fn warn_if_exposed(addr: SocketAddr) {
    if let Some(warning) = exposure_warning(addr) {
        eprintln!("graphtape: warning: {warning}");
    }
}

fn exposure_warning(addr: SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!("the inspector at {addr} is reachable from other machines; recordings can contain personal data (names, phone numbers, meeting details)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_quiet() {
        assert!(exposure_warning("127.0.0.1:4040".parse().unwrap()).is_none());
        assert!(exposure_warning("[::1]:4040".parse().unwrap()).is_none());
        let w = exposure_warning("0.0.0.0:4040".parse().unwrap()).unwrap();
        assert!(w.contains("0.0.0.0:4040") && w.contains("personal data"));
    }
}
