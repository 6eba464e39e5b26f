//! `now()`'s result: a naive date and time that templates use as Python's `datetime`
//! (attributes, `strftime`, `isoformat`, …), printed as `str(datetime)` in text and as its
//! ISO form where a value becomes data, as ansible-core's JSON encoder writes it.

use std::cell::Cell;
use std::fmt::{self, Write};
use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, TimeZone, Timelike};
use minijinja::value::{DynObject, Kwargs, Object, ObjectRepr, Value, from_args};
use minijinja::{Error, ErrorKind, State};

thread_local! {
    /// Set while a template value is turned into data, where a datetime is ISO text.
    static AS_DATA: Cell<bool> = const { Cell::new(false) };
}

/// Runs `convert` (a serialization of template values) with datetimes in their ISO form.
pub fn as_data<T>(convert: impl FnOnce() -> T) -> T {
    let before = AS_DATA.with(|flag| flag.replace(true));
    let result = convert();
    AS_DATA.with(|flag| flag.set(before));
    result
}

/// Python's `datetime` (or, from `.date()`, a `date`), without a time zone as `now()` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    when: NaiveDateTime,
    date_only: bool,
}

/// Ansible's `now(utc=False, fmt=None)`: the time as a datetime, or as `fmt` formats it.
pub fn now(utc: Option<bool>, fmt: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let utc = kwargs.get::<Option<bool>>("utc")?.or(utc).unwrap_or(false);
    let fmt = kwargs.get::<Option<String>>("fmt")?.or(fmt);
    kwargs.assert_all_used()?;
    let when =
        if utc { chrono::Utc::now().naive_utc() } else { chrono::Local::now().naive_local() };
    let datetime = DateTime { when, date_only: false };
    match fmt {
        Some(format) => Ok(Value::from(datetime.strftime(&format)?)),
        None => Ok(Value::from_object(datetime)),
    }
}

/// `type_debug`'s name for a datetime value, if `value` is one.
pub fn type_name(value: &Value) -> Option<&'static str> {
    let datetime = value.downcast_object_ref::<DateTime>()?;
    Some(if datetime.date_only { "date" } else { "datetime" })
}

impl DateTime {
    /// Python's `isoformat(sep)`: microseconds only when there are some.
    fn isoformat(&self, separator: &str) -> String {
        if self.date_only {
            return self.when.format("%Y-%m-%d").to_string();
        }
        let micros = self.when.nanosecond() / 1000;
        let mut text = self.when.format(&format!("%Y-%m-%d{separator}%H:%M:%S")).to_string();
        if micros != 0 {
            text.push_str(&format!(".{micros:06}"));
        }
        text
    }

    /// Python's `strftime`: `%f` is six digits of microseconds, and a naive time's `%z` and
    /// `%Z` are empty.
    fn strftime(&self, format: &str) -> Result<String, Error> {
        use chrono::format::{Item, StrftimeItems};
        let translated = python_format(format);
        let items: Vec<Item> = StrftimeItems::new(&translated).collect();
        if items.iter().any(|item| matches!(item, Item::Error)) {
            return Err(invalid(format!("`{format}` is not a strftime format")));
        }
        let mut text = String::new();
        write!(text, "{}", self.when.format_with_items(items.into_iter()))
            .map_err(|_| invalid(format!("`{format}` cannot format a date and time")))?;
        Ok(text)
    }

    /// Python's `timestamp()`: a naive time is the machine's local time.
    fn timestamp(&self) -> f64 {
        let local = chrono::Local.from_local_datetime(&self.when).earliest();
        let seconds = local.map_or_else(|| self.when.and_utc().timestamp(), |t| t.timestamp());
        seconds as f64 + f64::from(self.when.nanosecond() / 1000) / 1e6
    }
}

/// A Python strftime format in chrono's words.
fn python_format(format: &str) -> String {
    let mut translated = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            translated.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => translated.push_str("%6f"),
            Some('z' | 'Z') => {}
            Some(other) => {
                translated.push('%');
                translated.push(other);
            }
            None => translated.push('%'),
        }
    }
    translated
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = AS_DATA.with(Cell::get);
        f.write_str(&self.isoformat(if data { "T" } else { " " }))
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let when = &self.when;
        let time = |value: u32| (!self.date_only).then_some(Value::from(value));
        match key.as_str()? {
            "year" => Some(Value::from(when.year())),
            "month" => Some(Value::from(when.month())),
            "day" => Some(Value::from(when.day())),
            "hour" => time(when.hour()),
            "minute" => time(when.minute()),
            "second" => time(when.second()),
            "microsecond" => time(when.nanosecond() / 1000),
            "tzinfo" if !self.date_only => Some(Value::from(())),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (format,): (String,) = from_args(args)?;
                Ok(Value::from(self.strftime(&format)?))
            }
            "isoformat" => {
                let (separator,): (Option<String>,) = from_args(args)?;
                Ok(Value::from(self.isoformat(separator.as_deref().unwrap_or("T"))))
            }
            "timestamp" if !self.date_only => {
                from_args::<()>(args)?;
                Ok(Value::from(self.timestamp()))
            }
            "weekday" => {
                from_args::<()>(args)?;
                Ok(Value::from(self.when.weekday().num_days_from_monday()))
            }
            "isoweekday" => {
                from_args::<()>(args)?;
                Ok(Value::from(self.when.weekday().number_from_monday()))
            }
            "date" if !self.date_only => {
                from_args::<()>(args)?;
                let midnight = self.when.date().and_hms_opt(0, 0, 0).unwrap_or(self.when);
                Ok(Value::from_object(DateTime { when: midnight, date_only: true }))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<std::cmp::Ordering> {
        let other = other.downcast_ref::<Self>()?;
        Some(self.as_ref().cmp(other))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_ref(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime {
        let when = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").expect("a time");
        DateTime { when, date_only: false }
    }

    #[test]
    fn prints_as_python_prints_a_datetime() {
        assert_eq!(at("2026-12-03 23:11:33.029052").to_string(), "2026-12-03 23:11:33.029052");
        assert_eq!(at("2026-12-03 23:11:33").to_string(), "2026-12-03 23:11:33");
        let data = as_data(|| at("2026-12-03 23:11:33.000100").to_string());
        assert_eq!(data, "2026-12-03T23:11:33.000100");
    }

    #[test]
    fn strftime_speaks_python() {
        let when = at("2026-12-03 09:05:07.000042");
        let text = when.strftime("%Y-%m-%d %a %b %j %p %% %f|%z|%Z|%H").unwrap();
        assert_eq!(text, "2026-12-03 Thu Dec 337 AM % 000042|||09");
        assert!(when.strftime("%Q").is_err());
    }
}
