//! A play's rollout settings (`serial`, `order`, `max_fail_percentage`, `strategy`), read and
//! checked at load time so that a bad value fails before any host is touched.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::yaml::Node;

/// One entry of `serial`: a host count or a share of the play's hosts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchSize {
    Count(i64),
    Percent(i64),
}

/// The order in which a play's hosts are taken (`order:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostOrder {
    #[default]
    Inventory,
    ReverseInventory,
    Sorted,
    ReverseSorted,
    Shuffle,
}

/// How hosts move through the tasks (`strategy:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Every host finishes a task before any host starts the next.
    #[default]
    Linear,
    /// Each host runs through the play as fast as it can.
    Free,
}

/// The play keywords that shape a rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollout {
    /// Empty: one batch with every host.
    pub serial: Vec<BatchSize>,
    pub order: HostOrder,
    /// Per batch: the play stops when more than this share of the batch failed.
    pub max_fail_percentage: Option<f64>,
    pub strategy: Strategy,
}

impl Rollout {
    /// Reads the rollout keywords of a play mapping.
    pub fn load(play: &Node) -> Result<Rollout> {
        let mut rollout = Rollout::default();
        if let Some(node) = play.get("serial") {
            rollout.serial = serial(node)?;
        }
        if let Some(node) = play.get("order") {
            rollout.order = order(node)?;
        }
        if let Some(node) = play.get("max_fail_percentage") {
            rollout.max_fail_percentage = Some(percentage(node)?);
        }
        if let Some(node) = play.get("strategy") {
            rollout.strategy = strategy(node)?;
        }
        if let Some(node) = play.get("throttle") {
            check_throttle(node)?;
        }
        Ok(rollout)
    }
}

fn refuse_template(node: &Node, keyword: &str) -> Result<()> {
    if crate::playbook::display_string(&node.to_value()).contains("{{") {
        return Err(Error::NotSupported {
            what: format!("{}: a templated `{keyword}`", node.mark.location()),
        });
    }
    Ok(())
}

/// `throttle:` must be a host count written out; a templated one is refused rather than
/// ignored.
pub fn check_throttle(node: &Node) -> Result<()> {
    refuse_template(node, "throttle")?;
    match node.to_value() {
        Value::Number(number) if number.as_u64().is_some() => Ok(()),
        Value::String(text) if text.trim().parse::<u64>().is_ok() => Ok(()),
        other => Err(Error::invalid(
            &node.mark,
            format!("throttle expects a number of hosts, got {other}"),
        )),
    }
}

fn serial(node: &Node) -> Result<Vec<BatchSize>> {
    refuse_template(node, "serial")?;
    let items = match node.to_value() {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => vec![other],
    };
    items.iter().map(|item| batch_size(item).map_err(|m| Error::invalid(&node.mark, m))).collect()
}

/// `2`, `"2"` or `"30%"`, as ansible-core's `pct_to_int` reads them.
pub fn batch_size(item: &Value) -> std::result::Result<BatchSize, String> {
    let wrong = || format!("serial expects a number or a percentage such as \"25%\", got {item}");
    match item {
        Value::Number(number) => number.as_i64().map(BatchSize::Count).ok_or_else(wrong),
        Value::String(text) => match text.trim().strip_suffix('%') {
            Some(share) => share.trim().parse().map(BatchSize::Percent).map_err(|_| wrong()),
            None => text.trim().parse().map(BatchSize::Count).map_err(|_| wrong()),
        },
        _ => Err(wrong()),
    }
}

fn order(node: &Node) -> Result<HostOrder> {
    refuse_template(node, "order")?;
    match crate::playbook::display_string(&node.to_value()).as_str() {
        "inventory" => Ok(HostOrder::Inventory),
        "reverse_inventory" => Ok(HostOrder::ReverseInventory),
        "sorted" => Ok(HostOrder::Sorted),
        "reverse_sorted" => Ok(HostOrder::ReverseSorted),
        "shuffle" => Ok(HostOrder::Shuffle),
        other => Err(Error::invalid(
            &node.mark,
            format!(
                "order must be one of inventory, reverse_inventory, sorted, reverse_sorted or \
                 shuffle, got {other:?}"
            ),
        )),
    }
}

/// A number, or a string such as `"30%"` (ansible-core's `percent` field type).
fn percentage(node: &Node) -> Result<f64> {
    refuse_template(node, "max_fail_percentage")?;
    let value = node.to_value();
    let number = match &value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    };
    number.ok_or_else(|| {
        Error::invalid(&node.mark, format!("max_fail_percentage expects a number, got {value}"))
    })
}

fn strategy(node: &Node) -> Result<Strategy> {
    refuse_template(node, "strategy")?;
    match crate::playbook::display_string(&node.to_value()).as_str() {
        "linear" | "ansible.builtin.linear" => Ok(Strategy::Linear),
        "free" | "ansible.builtin.free" => Ok(Strategy::Free),
        other => Err(Error::NotSupported {
            what: format!("{}: the strategy `{other}` (use linear or free)", node.mark.location()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_sizes_read_like_pct_to_int() {
        assert_eq!(batch_size(&json!(2)), Ok(BatchSize::Count(2)));
        assert_eq!(batch_size(&json!("3")), Ok(BatchSize::Count(3)));
        assert_eq!(batch_size(&json!("25%")), Ok(BatchSize::Percent(25)));
        assert!(batch_size(&json!("many")).is_err());
        assert!(batch_size(&json!(true)).is_err());
    }
}
