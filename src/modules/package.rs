//! `package`: the generic package module, which hands its arguments to the host's own
//! package manager module; only apt exists here.

use super::{Call, Outcome, fail};

/// The package manager to use: `use:` unless `auto`, else the `ansible_pkg_mgr` fact, else
/// whether apt-get exists on the host (Ansible gathers that one fact for the same purpose).
async fn manager(call: &Call<'_>) -> Result<String, super::Failure> {
    if let Some(name) = call.args.string(&["use"]).filter(|name| name != "auto") {
        return Ok(name);
    }
    let fact = call
        .vars
        .resolved("ansible_pkg_mgr")
        .or_else(|| {
            call.vars
                .resolved("ansible_facts")
                .map(|facts| facts.map(|facts| facts["pkg_mgr"].clone()))
        })
        .and_then(Result::ok)
        .and_then(|value| value.as_str().map(str::to_string))
        .filter(|name| name != "unknown");
    if let Some(name) = fact {
        return Ok(name);
    }
    let probe = call.remote.run("command -v apt-get >/dev/null 2>&1 && echo apt").await?;
    Ok(if probe.stdout_text().trim() == "apt" { "apt".into() } else { "unknown".into() })
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let manager = manager(call).await?;
    match manager.as_str() {
        "apt" => {
            call.args.map.remove("use");
            super::apt::run(call).await
        }
        "unknown" => Err(fail(
            "Could not detect which package manager to use. Try gathering facts or setting \
             the \"use\" option.",
        )),
        other => {
            Err(fail(format!("not supported yet: package with the `{other}` package manager")))
        }
    }
}
