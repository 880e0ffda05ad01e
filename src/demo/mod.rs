//! The stand-ins `graphtape demo` records between: a scripted Graph and a scripted bot,
//! both real HTTP servers on 127.0.0.1, so the demo runs the real `record` pipeline on a
//! machine with neither.
//!
//! The flow is the seed's incoming call: Graph notifies an incoming call, the bot
//! answers, Graph notifies establishing and established, the bot invites a participant
//! (Graph notifies the invite's completion *before* answering it, the race graphtape
//! exists to catch), the bot hangs up, Graph notifies terminated and deleted.

pub(crate) mod bot;
pub(crate) mod graph;
mod http;

/// The incoming call (as Graph spells it in notification resources).
const CALL: &str = "57DAB8B1894C409AB240BD8BEAE78896";
/// The invite operation.
const OPERATION: &str = "0FE0623FD62842EDB4BD8AC290072CC5";
/// The webhook path of the bot's registration (where incoming calls arrive).
pub(crate) const BOT_PATH: &str = "/api/calls";

/// A stand-in failed: what it was doing and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(pub String);

/// The call id as Graph spells it in URLs and `Location` headers.
fn dashed(id: &str) -> String {
    let l = id.to_lowercase();
    format!(
        "{}-{}-{}-{}-{}",
        &l[..8],
        &l[8..12],
        &l[12..16],
        &l[16..20],
        &l[20..]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dashed_is_the_location_spelling() {
        assert_eq!(
            super::dashed(super::CALL),
            "57dab8b1-894c-409a-b240-bd8beae78896"
        );
    }
}
