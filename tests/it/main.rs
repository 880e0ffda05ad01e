//! Integration tests: graphtape as a real process between real HTTP peers on loopback.

mod bot;
mod callbacks;
mod graph_sim;
mod record;
mod replay;
mod store_files;
mod util;
