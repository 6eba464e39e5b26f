//! The variables a template sees, resolved lazily: a variable's own templates render on first use.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, Value as JinjaValue};
use serde_json::{Map, Value};

use super::Templar;

/// Served from the templar's shared store unless the variables carry their own.
const HOSTVARS: &str = "hostvars";

/// The merged variables of one host at one task, as a template context.
#[derive(Debug)]
pub struct Context {
    vars: Arc<Map<String, Value>>,
    templar: Templar,
    state: Mutex<ResolveState>,
}

#[derive(Debug, Default)]
struct ResolveState {
    resolving: HashSet<String>,
    /// The first failure inside a lazily resolved variable, reported when the template fails.
    failure: Option<String>,
    /// The last top-level name looked up and not found, for "'x' is undefined".
    missing: Option<String>,
}

impl Context {
    pub fn new(vars: Map<String, Value>, templar: Templar) -> Arc<Context> {
        Context::shared(Arc::new(vars), templar)
    }

    /// A context over variables kept elsewhere too (a host's entry in `hostvars`).
    pub fn shared(vars: Arc<Map<String, Value>>, templar: Templar) -> Arc<Context> {
        Arc::new(Context { vars, templar, state: Mutex::new(ResolveState::default()) })
    }

    pub fn raw(&self) -> &Map<String, Value> {
        &self.vars
    }

    /// The templar these variables render with (lookups render template files through it).
    pub fn templar(&self) -> &Templar {
        &self.templar
    }

    /// Why the last render failed inside a variable or on a missing name, if known.
    pub fn take_failure(&self) -> (Option<String>, Option<String>) {
        let mut state = self.lock();
        (state.failure.take(), state.missing.take())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ResolveState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A variable with its templates rendered, as plain data.
    pub fn resolved(self: &Arc<Self>, name: &str) -> Option<Result<Value, String>> {
        let Some(raw) = self.vars.get(name) else {
            return (name == HOSTVARS).then(|| self.templar.hostvars().to_value(&self.templar));
        };
        if !super::has_template(raw) {
            return Some(Ok(raw.clone()));
        }
        if !self.lock().resolving.insert(name.to_string()) {
            return Some(Err(format!(
                "recursive loop detected in template: `{name}` refers to itself"
            )));
        }
        let result = self.templar.render_value(raw, self).map_err(|error| error.to_string());
        self.lock().resolving.remove(name);
        Some(result)
    }
}

impl Object for Context {
    fn get_value(self: &Arc<Self>, key: &JinjaValue) -> Option<JinjaValue> {
        let name = key.as_str()?;
        if name == super::lookups::CONTEXT_KEY {
            return Some(JinjaValue::from_dyn_object(self.clone()));
        }
        if name == HOSTVARS && !self.vars.contains_key(HOSTVARS) {
            return Some(super::hostvars::View::value(self.templar.clone()));
        }
        match self.resolved(name) {
            Some(Ok(value)) => Some(JinjaValue::from(minijinja::value::Serde(&value))),
            Some(Err(message)) => {
                let mut state = self.lock();
                if state.failure.is_none() {
                    state.failure = Some(format!("while resolving `{name}`: {message}"));
                }
                None
            }
            None => {
                self.lock().missing = Some(name.to_string());
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<JinjaValue> =
            self.vars.keys().map(|key| JinjaValue::from(key.as_str())).collect();
        Enumerator::Values(keys)
    }
}
