//! Integration tests: graphtape as a real process between real HTTP peers on loopback.

mod callbacks;
mod graph_sim;
mod record;
mod store_files;
mod util;
