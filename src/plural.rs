//! Counts in messages: "1 notification", "2 notifications".

/// `n` and the noun, in the singular for exactly one (regular English plurals).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular() {
        assert_eq!(super::count(1u64, "notification"), "1 notification");
        assert_eq!(super::count(0u64, "finding"), "0 findings");
        assert_eq!(super::count(12u32, "exchange"), "12 exchanges");
    }
}
