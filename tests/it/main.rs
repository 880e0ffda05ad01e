//! Integration tests: graphtape as a real process between real HTTP peers on loopback.

mod bot;
mod browser;
mod callbacks;
mod flows;
mod graph_sim;
mod record;
mod recordings;
mod replay;
mod replayer;
mod store_files;
mod util;
mod views;
