//! A play's `vars_files`, read once per host when the play starts: names are templated with
//! the host's variables, a list gives alternatives (the first that exists is read), and an
//! entry whose name uses an undefined variable is skipped with a warning, as in ansible-core.

use serde_json::{Map, Value};

use super::{PlayScope, Runner, vars};
use crate::error::{Error, Result};
use crate::playbook::{Play, VarsFile, display_string};
use crate::template::Context;

impl Runner<'_> {
    pub(super) fn load_vars_files(&mut self, play: &Play, scope: &PlayScope) -> Result<()> {
        for host in &scope.all_hosts {
            let mut loaded = Map::new();
            for entry in &play.vars_files {
                let Some(state) = self.hosts.get_mut(host) else { continue };
                state.vars_files = loaded.clone();
                let state = &self.hosts[host];
                let vars = vars::assemble(self.shared, scope, state, None, &[]);
                if let Some(found) = self.read_entry(entry, vars)? {
                    loaded.extend(found);
                }
            }
            if let Some(state) = self.hosts.get_mut(host) {
                state.vars_files = loaded;
            }
        }
        Ok(())
    }

    /// The variables of the first alternative that exists, `None` when an undefined variable
    /// makes the entry unusable for this host or none exists (ansible-core goes on then).
    fn read_entry(
        &self,
        entry: &VarsFile,
        vars: Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>> {
        let templar = &self.shared.templar;
        let context = Context::new(vars, templar.clone());
        for name in &entry.alternatives {
            let Ok(rendered) = templar.render_string(name, &context) else {
                tracing::debug!(
                    "{}: skipping vars_files item due to an undefined variable",
                    entry.mark.location()
                );
                return Ok(None);
            };
            let path = self.shared.playbook_dir.join(display_string(&rendered));
            if !path.is_file() {
                continue;
            }
            let node = crate::yaml::load_file(&path)?;
            return match node.to_value() {
                Value::Object(found) => Ok(Some(found)),
                Value::Null => Ok(Some(Map::new())),
                _ => Err(Error::invalid(&node.mark, "a vars_files file must hold a mapping")),
            };
        }
        crate::output::err(&format!(
            "[WARNING]: {}: none of the vars_files {} was found; skipped\n",
            entry.mark.location(),
            entry.alternatives.join(", ")
        ));
        Ok(None)
    }
}
