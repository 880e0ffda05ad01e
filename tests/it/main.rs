//! Integration tests: graphtape as a real process between real HTTP peers on loopback.

mod bot;
mod callback_safety;
mod callbacks;
mod flows;
mod graph_sim;
mod gzip_bot;
mod hostile;
mod record;
mod recordings;
mod replay;
mod replayer;
mod store_files;
mod util;
