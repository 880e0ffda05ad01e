//! Integration tests: graphtape as a real process between real HTTP peers on loopback.

mod bot;
mod callback_safety;
mod callbacks;
mod explain;
mod explore;
mod explore_bot;
mod fixtures;
mod flows;
mod graph_sim;
mod gzip_bot;
mod hostile;
mod limits;
mod newcomer;
mod record;
mod recordings;
mod replay;
mod replayer;
mod resets;
mod sanitize;
mod shutdown;
mod store_files;
mod streaming;
mod tidy;
mod util;
