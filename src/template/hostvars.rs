//! `hostvars`: every host's variables, kept once for the whole run and shared by every
//! template context, instead of a copy inside each host's variables (which grew with the
//! square of the hosts).
//!
//! A template reaches another host's variables through a view: `hostvars[h]` is `h`'s own
//! lazy context, so its templated values render with `h`'s variables, as in ansible-core,
//! and only the values a template reads are converted.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use minijinja::value::{Enumerator, Object, Value as JinjaValue};
use serde_json::{Map, Value};

use super::{Context, Templar};

/// Each host's variables as `hostvars` shows them, replaced whole on each refresh.
#[derive(Debug, Default)]
pub struct Hostvars {
    hosts: RwLock<BTreeMap<String, Arc<Map<String, Value>>>>,
}

impl Hostvars {
    pub fn set(&self, host: &str, vars: Map<String, Value>) {
        let mut hosts = self.hosts.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        hosts.insert(host.to_string(), Arc::new(vars));
    }

    pub fn get(&self, host: &str) -> Option<Arc<Map<String, Value>>> {
        self.hosts.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(host).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.hosts.read().unwrap_or_else(|poisoned| poisoned.into_inner()).keys().cloned().collect()
    }

    /// The whole of it as plain data, each host's values rendered with its own variables
    /// (for the rare use of `hostvars` as one value, such as `lookup('vars', 'hostvars')`).
    pub fn to_value(&self, templar: &Templar) -> Result<Value, String> {
        let hosts = self.hosts.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let mut all = Map::new();
        for (name, vars) in hosts {
            let context = Context::shared(vars.clone(), templar.clone());
            let mut rendered = Map::new();
            for key in vars.keys() {
                if let Some(value) = context.resolved(key) {
                    rendered.insert(key.clone(), value?);
                }
            }
            all.insert(name, Value::Object(rendered));
        }
        Ok(Value::Object(all))
    }
}

/// What a template sees as `hostvars`.
#[derive(Debug)]
pub struct View {
    templar: Templar,
}

impl View {
    pub fn value(templar: Templar) -> JinjaValue {
        JinjaValue::from_object(View { templar })
    }
}

impl Object for View {
    fn get_value(self: &Arc<Self>, key: &JinjaValue) -> Option<JinjaValue> {
        let vars = self.templar.hostvars().get(key.as_str()?)?;
        Some(JinjaValue::from_dyn_object(Context::shared(vars, self.templar.clone())))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names = self.templar.hostvars().names();
        Enumerator::Values(names.into_iter().map(JinjaValue::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        let Value::Object(map) = value else { panic!("test vars must be a mapping") };
        map
    }

    #[test]
    fn another_hosts_values_render_with_its_own_variables() {
        let templar = Templar::new();
        templar.hostvars().set("a", map(json!({"port": 1, "address": "a:{{ port }}"})));
        templar.hostvars().set("b", map(json!({"port": 2, "address": "b:{{ port }}"})));
        let here = Context::new(map(json!({"port": 9})), templar.clone());
        let render = |text: &str| templar.render_string(text, &here).unwrap();
        assert_eq!(render("{{ hostvars['a'].address }}"), json!("a:1"));
        assert_eq!(render("{{ hostvars.b['address'] }}"), json!("b:2"));
        assert_eq!(render("{{ hostvars | list }}"), json!(["a", "b"]));
        assert_eq!(render("{{ 'b' in hostvars }}"), json!(true));
        assert_eq!(render("{{ hostvars['c'] is defined }}"), json!(false));
        assert_eq!(render("{{ hostvars.a.port + port }}"), json!(10));
    }

    #[test]
    fn as_one_value_every_host_is_rendered() {
        let templar = Templar::new();
        templar.hostvars().set("a", map(json!({"port": 1, "address": "a:{{ port }}"})));
        assert_eq!(
            templar.hostvars().to_value(&templar).unwrap(),
            json!({"a": {"port": 1, "address": "a:1"}})
        );
    }

    #[test]
    fn a_refresh_replaces_a_hosts_values() {
        let templar = Templar::new();
        templar.hostvars().set("a", map(json!({"seen": 1})));
        let here = Context::new(Map::new(), templar.clone());
        templar.hostvars().set("a", map(json!({"seen": 2})));
        assert_eq!(templar.render_string("{{ hostvars.a.seen }}", &here).unwrap(), json!(2));
    }
}
