//! Terminal progress: a bar per epoch (epoch, batch, loss, samples/s) when stderr is a terminal,
//! and one summary line per epoch unless quiet.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress reporting for one training call.
pub struct Progress {
    quiet: bool,
    bars: bool,
}

/// The bar of one epoch (hidden when not on a terminal).
pub struct EpochBar {
    bar: ProgressBar,
}

impl Progress {
    /// Bars only on a terminal; nothing at all when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A bar over `batches` steps of epoch `epoch`.
    pub fn epoch_bar(&self, epoch: usize, epochs: usize, batches: usize) -> EpochBar {
        if !self.bars {
            return EpochBar {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::new(batches as u64);
        let style =
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{epochs}"));
        EpochBar { bar }
    }

    /// Prints a summary line to stderr unless quiet.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

impl EpochBar {
    /// Records that `batch` batches are done.
    pub fn tick(&self, batch: usize, loss: f64, samples_per_s: f64) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_position(batch as u64);
        self.bar
            .set_message(format!("loss {loss:.4} {samples_per_s:.0} samples/s"));
    }

    /// Removes the bar (the epoch's summary line follows).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
