//! Walltime: `HH:MM:SS` durations and the sizing rule for a job that runs seeds one after
//! another.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Safety margin on the estimated time (20%).
pub const MARGIN: f64 = 1.2;

/// A walltime in whole seconds, written `HH:MM:SS` (hours may exceed 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Walltime(pub u64);

impl Walltime {
    /// From hours, minutes and seconds.
    pub fn hms(h: u64, m: u64, s: u64) -> Walltime {
        Walltime(h * 3600 + m * 60 + s)
    }
}

impl fmt::Display for Walltime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

impl FromStr for Walltime {
    type Err = String;

    /// Parses `HH:MM:SS`, `MM:SS` or a number of seconds.
    fn from_str(text: &str) -> Result<Walltime, String> {
        let parts: Vec<&str> = text.trim().split(':').collect();
        let num = |p: &str| {
            p.parse::<u64>()
                .map_err(|_| format!("`{text}` is not a walltime (HH:MM:SS)"))
        };
        let secs = match parts.as_slice() {
            [s] => num(s)?,
            [m, s] => num(m)? * 60 + num(s)?,
            [h, m, s] => num(h)? * 3600 + num(m)? * 60 + num(s)?,
            _ => return Err(format!("`{text}` is not a walltime (HH:MM:SS)")),
        };
        Ok(Walltime(secs))
    }
}

impl Serialize for Walltime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Walltime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The walltime to request for `seeds` runs done one after another, each estimated at
/// `per_seed`: `seeds x per_seed x 1.2`, capped at the queue's `max` (the runs resume from
/// their checkpoints in a resubmitted job). Refuses when one seed alone, with the margin,
/// would exceed `max`, naming the queue.
pub fn size_walltime(
    seeds: usize,
    per_seed: Walltime,
    max: Walltime,
    queue: &str,
) -> Result<Walltime> {
    let one = (per_seed.0 as f64 * MARGIN).ceil() as u64;
    if one > max.0 {
        return Err(Error::invalid(
            "walltime",
            format!(
                "one seed needs {} (estimate {per_seed} x {MARGIN}), over the {} maximum of queue `{queue}`; pick a queue with a longer limit or shorten the run",
                Walltime(one),
                max
            ),
        ));
    }
    let total = (seeds.max(1) as f64 * per_seed.0 as f64 * MARGIN).ceil() as u64;
    Ok(Walltime(total.min(max.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_hours_beyond_a_day() -> Result<(), String> {
        assert_eq!("144:00:00".parse::<Walltime>()?, Walltime::hms(144, 0, 0));
        assert_eq!("05:30".parse::<Walltime>()?, Walltime(330));
        assert_eq!(Walltime::hms(100, 2, 3).to_string(), "100:02:03");
        assert!("1:2:3:4".parse::<Walltime>().is_err());
        assert!("ab".parse::<Walltime>().is_err());
        Ok(())
    }

    #[test]
    fn sizing_rule_scales_caps_and_refuses() -> crate::Result<()> {
        let max = Walltime::hms(48, 0, 0);
        // 5 seeds x 2 h x 1.2 = 12 h
        assert_eq!(
            size_walltime(5, Walltime::hms(2, 0, 0), max, "serial")?,
            Walltime::hms(12, 0, 0)
        );
        // 30 seeds x 2 h x 1.2 = 72 h, capped at 48 h
        assert_eq!(
            size_walltime(30, Walltime::hms(2, 0, 0), max, "serial")?,
            max
        );
        // one seed of 41 h needs 49.2 h: refused, naming the queue
        let err = size_walltime(1, Walltime::hms(41, 0, 0), max, "gpu_1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpu_1") && err.contains("48:00:00"), "{err}");
        Ok(())
    }
}
