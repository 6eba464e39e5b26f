//! The rollout progress line shown on a terminal (which batch, how many hosts are done or
//! failed); without a terminal on stderr nothing is drawn.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The line being drawn, if any, so that output printed meanwhile can step around it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `print` with the progress line cleared, then draws it again.
pub fn suspend<T>(print: impl FnOnce() -> T) -> T {
    let active = ACTIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    match active {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Takes the progress line off the terminal for good (the process is about to exit).
pub fn clear_progress() {
    if let Some(bar) = ACTIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
        bar.finish_and_clear();
    }
}

/// Counts for one play's rollout.
pub struct Progress {
    bar: Option<ProgressBar>,
    batch: usize,
    batches: usize,
    batch_size: usize,
    done: usize,
    failed: BTreeSet<String>,
    tasks: usize,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            bar: None,
            batch: 0,
            batches: 0,
            batch_size: 0,
            done: 0,
            failed: BTreeSet::new(),
            tasks: 0,
        }
    }

    /// The spinner, drawn from the first batch on, and only on a terminal.
    fn show(&mut self) {
        let wanted =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        if self.bar.is_some() || !wanted {
            return;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        *ACTIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(bar.clone());
        self.bar = Some(bar);
    }

    /// A new batch (`serial` wave) of a play begins.
    pub fn start_batch(&mut self, batch: usize, batches: usize, size: usize) {
        if batch == 1 {
            self.done = 0;
            self.failed.clear();
        }
        (self.batch, self.batches, self.batch_size, self.tasks) = (batch, batches, size, 0);
        self.show();
        self.draw();
    }

    /// One host finished one task; `failed` says whether it has left the play.
    pub fn task_done(&mut self, host: &str, failed: bool) {
        self.tasks += 1;
        if failed {
            self.failed.insert(host.to_string());
        }
        self.draw();
    }

    /// The batch is over: its hosts that did not fail are done.
    pub fn finish_batch<'a>(&mut self, hosts: impl Iterator<Item = (&'a str, bool)>) {
        for (host, failed) in hosts {
            if failed {
                self.failed.insert(host.to_string());
            } else {
                self.done += 1;
            }
        }
        self.draw();
    }

    fn draw(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "batch {}/{} ({} hosts): {} hosts done, {} failed, {} host tasks run in this batch",
                self.batch,
                self.batches,
                self.batch_size,
                self.done,
                self.failed.len(),
                self.tasks
            ));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *ACTIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        }
    }
}
