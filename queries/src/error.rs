//! Errors in a job's SQL: where, what, and a hint.

use std::fmt;

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, Span};

/// A mistake in a job, with its line and column (1-based; 0 when unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

impl QueryError {
    pub fn at(span: Span, message: impl Into<String>) -> QueryError {
        QueryError::at_location(span.start, message)
    }

    pub fn at_location(location: Location, message: impl Into<String>) -> QueryError {
        QueryError { line: location.line, column: location.column, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> QueryError {
        self.hint = Some(hint.into());
        self
    }

    /// Adds "did you mean `x`?" when one of `known` is close to `name`, and
    /// lists them otherwise.
    pub fn suggesting<'a>(self, name: &str, known: impl IntoIterator<Item = &'a str>) -> QueryError {
        let known: Vec<&str> = known.into_iter().collect();
        let closest = known
            .iter()
            .map(|k| (edit_distance(&name.to_lowercase(), &k.to_lowercase()), *k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 3))
            .min();
        match closest {
            Some((_, k)) => self.with_hint(format!("did you mean `{k}`?")),
            None if known.is_empty() => self,
            None => self.with_hint(format!("known: {}", known.join(", "))),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for QueryError {}

impl From<ParserError> for QueryError {
    /// sqlparser puts the location at the end of its message, as
    /// "... at Line: 3, Column: 15"; it becomes ours.
    fn from(e: ParserError) -> QueryError {
        let text = match e {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
            ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_owned(),
        };
        let Some((message, location)) = text.rsplit_once(" at Line: ") else {
            return QueryError { line: 0, column: 0, message: text, hint: None };
        };
        let mut numbers = location.split(", Column: ").map(|n| n.trim().parse::<u64>().unwrap_or(0));
        let (line, column) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        QueryError { line, column, message: lowercase_first(message), hint: None }
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name_or_lists_them() {
        let e = QueryError::at_location(Location { line: 2, column: 5 }, "unknown column `confidenc`");
        let e = e.suggesting("confidenc", ["label", "confidence"]);
        assert_eq!(e.to_string(), "line 2, column 5: unknown column `confidenc` (hint: did you mean `confidence`?)");
        let e = QueryError::at_location(Location { line: 1, column: 1 }, "x").suggesting("zzz", ["label"]);
        assert_eq!(e.hint.as_deref(), Some("known: label"));
    }

    #[test]
    fn parser_locations_are_kept() {
        let e = QueryError::from(ParserError::ParserError("Expected: ), found: x at Line: 3, Column: 15".into()));
        assert_eq!((e.line, e.column, e.message.as_str()), (3, 15, "expected: ), found: x"));
    }
}
