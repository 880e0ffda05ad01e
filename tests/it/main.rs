//! Integration tests: graphtape as a real process between real HTTP peers on loopback.

mod bot;
mod callbacks;
mod explore;
mod explore_bot;
mod flows;
mod graph_sim;
mod record;
mod recordings;
mod replay;
mod replayer;
mod store_files;
mod util;
