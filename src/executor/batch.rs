//! Planning a rollout: the order of a play's hosts, their `serial` batches, and the
//! `max_fail_percentage` rule, as pure functions of the play's settings.

use crate::playbook::rollout::{BatchSize, HostOrder};

/// The play's hosts in the order `order:` asks for.
pub fn ordered(mut hosts: Vec<String>, order: HostOrder) -> Vec<String> {
    match order {
        HostOrder::Inventory => {}
        HostOrder::ReverseInventory => hosts.reverse(),
        HostOrder::Sorted => hosts.sort(),
        HostOrder::ReverseSorted => {
            hosts.sort();
            hosts.reverse();
        }
        HostOrder::Shuffle => shuffle(&mut hosts, seed()),
    }
    hosts
}

/// A seed that differs from run to run; `shuffle` needs no stronger randomness.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// Fisher-Yates with a xorshift generator.
fn shuffle(hosts: &mut [String], mut state: u64) {
    state |= 1;
    for index in (1..hosts.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let other = (state % (index as u64 + 1)) as usize;
        hosts.swap(index, other);
    }
}

/// How many hosts one `serial` entry takes out of `total`: a share rounds down but is never
/// zero hosts; zero or less means all that remain.
fn batch_length(size: BatchSize, total: usize) -> i64 {
    match size {
        BatchSize::Count(count) => count,
        BatchSize::Percent(share) => match (share as f64 / 100.0 * total as f64) as i64 {
            0 => 1,
            length => length,
        },
    }
}

/// Splits the hosts into batches; the last `serial` entry repeats until no host is left.
pub fn batches(hosts: &[String], serial: &[BatchSize]) -> Vec<Vec<String>> {
    let mut batches = Vec::new();
    let mut rest = hosts;
    let mut entry = 0;
    while !rest.is_empty() {
        let length = match serial.get(entry) {
            None => 0,
            Some(size) => batch_length(*size, hosts.len()),
        };
        let take = if length <= 0 { rest.len() } else { (length as usize).min(rest.len()) };
        batches.push(rest[..take].to_vec());
        rest = &rest[take..];
        entry = (entry + 1).min(serial.len().saturating_sub(1));
    }
    batches
}

/// The play stops when strictly more than `percentage` of the batch failed.
pub fn too_many_failed(failed: usize, batch_size: usize, percentage: f64) -> bool {
    batch_size > 0 && (failed as f64 / batch_size as f64) > percentage / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (1..=count).map(|n| format!("h{n}")).collect()
    }

    fn lengths(serial: &[BatchSize], count: usize) -> Vec<usize> {
        batches(&names(count), serial).iter().map(Vec::len).collect()
    }

    #[test]
    fn no_serial_is_one_batch() {
        assert_eq!(lengths(&[], 5), [5]);
        assert_eq!(lengths(&[BatchSize::Count(0)], 5), [5]);
    }

    #[test]
    fn a_list_repeats_its_last_entry() {
        let serial = [BatchSize::Count(1), BatchSize::Percent(50), BatchSize::Count(3)];
        assert_eq!(lengths(&serial, 5), [1, 2, 2]);
        assert_eq!(lengths(&serial, 10), [1, 5, 3, 1]);
    }

    #[test]
    fn percentages_round_down_to_at_least_one() {
        assert_eq!(lengths(&[BatchSize::Percent(30)], 4), [1, 1, 1, 1]);
        assert_eq!(lengths(&[BatchSize::Percent(25), BatchSize::Percent(100)], 8), [2, 6]);
    }

    #[test]
    fn the_rule_is_strictly_more_than() {
        assert!(!too_many_failed(1, 2, 50.0));
        assert!(too_many_failed(2, 3, 50.0));
        assert!(too_many_failed(1, 1, 0.0));
        assert!(!too_many_failed(0, 3, 0.0));
    }

    #[test]
    fn orders() {
        let hosts = vec!["b".to_string(), "c".into(), "a".into()];
        assert_eq!(ordered(hosts.clone(), HostOrder::Sorted), ["a", "b", "c"]);
        assert_eq!(ordered(hosts.clone(), HostOrder::ReverseSorted), ["c", "b", "a"]);
        assert_eq!(ordered(hosts.clone(), HostOrder::ReverseInventory), ["a", "c", "b"]);
        let mut shuffled = ordered(hosts.clone(), HostOrder::Shuffle);
        shuffled.sort();
        assert_eq!(shuffled, ["a", "b", "c"]);
    }
}
