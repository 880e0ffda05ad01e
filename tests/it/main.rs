//! Integration tests: graphtape as a real process between real HTTP peers on loopback.

mod bot;
mod callbacks;
mod fixtures;
mod flows;
mod graph_sim;
mod hostile;
mod limits;
mod newcomer;
mod record;
mod recordings;
mod replay;
mod replayer;
mod resets;
mod shutdown;
mod store_files;
mod streaming;
mod tidy;
mod util;
