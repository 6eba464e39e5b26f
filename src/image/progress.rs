//! Status of the image steps on stderr: a spinner while a step runs (only on a terminal),
//! then one aligned line per step with the time it took, which the bake summary repeats.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Default)]
pub struct Steps {
    current: Option<(String, Instant, ProgressBar)>,
    pub times: Vec<(String, Duration)>,
}

impl Steps {
    pub fn new() -> Steps {
        Steps::default()
    }

    pub fn start(&mut self, name: &str) {
        self.done();
        // indicatif draws nothing when stderr is not a terminal.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.current = Some((name.to_string(), Instant::now(), bar));
    }

    /// Ends the running step, if any, and prints its line.
    pub fn done(&mut self) {
        if let Some((name, started, bar)) = self.current.take() {
            bar.finish_and_clear();
            let elapsed = started.elapsed();
            crate::output::err(&format!(
                "{:>12} {name} in {:.1}s\n",
                "done",
                elapsed.as_secs_f64()
            ));
            self.times.push((name, elapsed));
        }
    }

    /// A status line that is not a timed step.
    pub fn note(&self, text: &str) {
        let line = format!("{:>12} {text}", "note");
        match &self.current {
            Some((_, _, bar)) => bar.suspend(|| crate::output::err(&format!("{line}\n"))),
            None => crate::output::err(&format!("{line}\n")),
        }
    }

    /// Lets the playbook's own output through without the spinner drawing over it.
    pub fn pause(&mut self) {
        if let Some((_, _, bar)) = &self.current {
            bar.disable_steady_tick();
            bar.finish_and_clear();
        }
    }

    pub fn summary(&self) -> String {
        self.times
            .iter()
            .map(|(name, time)| format!("{name}: {:.1}s", time.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
