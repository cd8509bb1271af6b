//! The job dialect's statements, parsed with sqlparser.
//!
//! `CREATE SOURCE`, `CREATE STREAM`, `CREATE VIEW` and `CREATE SINK` are
//! frameflow's own, so their frames are parsed here with sqlparser's
//! tokenizer and helpers; every `SELECT` inside them, with its expressions,
//! is sqlparser's own `parse_query`.

use sqlparser::ast::{Expr, Ident, Query, SqlOption, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Token};

use crate::error::QueryError;

/// A `WITH (key = value, ...)` entry; values are kept as text.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionValue {
    pub key: Ident,
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// `CREATE SOURCE name FROM kind ['location'] [WITH (...)]`
    CreateSource { name: Ident, kind: Ident, location: Option<String>, options: Vec<OptionValue> },
    /// `CREATE STREAM name AS SELECT ...`
    CreateStream { name: Ident, query: Box<Query> },
    /// `CREATE VIEW name [WITH (...)] AS SELECT ...`
    CreateView { name: Ident, options: Vec<OptionValue>, query: Box<Query> },
    /// `CREATE SINK name FROM input INTO kind ['location'] [WITH (...)]`
    CreateSink { name: Ident, input: Ident, kind: Ident, location: Option<String>, options: Vec<OptionValue> },
    /// `EXPLAIN <CREATE statement>`: plan it, show the plan, run nothing.
    Explain(Box<Statement>),
}

/// Parses a job: statements separated by semicolons.
pub fn parse_job(sql: &str) -> Result<Vec<Statement>, QueryError> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            return Ok(statements);
        }
        statements.push(parse_statement(&mut parser)?);
        let next = parser.peek_token();
        if !matches!(next.token, Token::SemiColon | Token::EOF) {
            return Err(QueryError::at(next.span, format!("expected `;` after the statement, found `{}`", next.token)));
        }
    }
}

fn parse_statement(parser: &mut Parser) -> Result<Statement, QueryError> {
    if parser.parse_keyword(Keyword::EXPLAIN) {
        return Ok(Statement::Explain(Box::new(parse_statement(parser)?)));
    }
    let start = parser.peek_token();
    if !parser.parse_keyword(Keyword::CREATE) {
        return Err(QueryError::at(start.span, format!("expected CREATE, found `{}`", start.token))
            .with_hint("a job is CREATE SOURCE, STREAM, VIEW and SINK statements, each optionally after EXPLAIN"));
    }
    let what = parser.next_token();
    let word = match &what.token {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    match word.as_str() {
        "SOURCE" => {
            let name = parser.parse_identifier()?;
            parser.expect_keyword_is(Keyword::FROM)?;
            let kind = parser.parse_identifier()?;
            let location = parse_optional_string(parser)?;
            let options = parse_with(parser)?;
            Ok(Statement::CreateSource { name, kind, location, options })
        }
        "STREAM" => {
            let name = parser.parse_identifier()?;
            parser.expect_keyword_is(Keyword::AS)?;
            Ok(Statement::CreateStream { name, query: parser.parse_query()? })
        }
        "VIEW" => {
            let name = parser.parse_identifier()?;
            let options = parse_with(parser)?;
            parser.expect_keyword_is(Keyword::AS)?;
            Ok(Statement::CreateView { name, options, query: parser.parse_query()? })
        }
        "SINK" => {
            let name = parser.parse_identifier()?;
            parser.expect_keyword_is(Keyword::FROM)?;
            let input = parser.parse_identifier()?;
            parser.expect_keyword_is(Keyword::INTO)?;
            let kind = parser.parse_identifier()?;
            let location = parse_optional_string(parser)?;
            let options = parse_with(parser)?;
            Ok(Statement::CreateSink { name, input, kind, location, options })
        }
        _ => Err(QueryError::at(
            what.span,
            format!("expected SOURCE, STREAM, VIEW or SINK after CREATE, found `{}`", what.token),
        )),
    }
}

fn parse_optional_string(parser: &mut Parser) -> Result<Option<String>, QueryError> {
    match parser.peek_token().token {
        Token::SingleQuotedString(_) => Ok(Some(parser.parse_literal_string()?)),
        _ => Ok(None),
    }
}

fn parse_with(parser: &mut Parser) -> Result<Vec<OptionValue>, QueryError> {
    let start = parser.peek_token().span;
    parser
        .parse_options(Keyword::WITH)?
        .into_iter()
        .map(|option| match option {
            SqlOption::KeyValue { key, value } => {
                let span = key.span;
                Ok(OptionValue { value: literal_text(&value)?, key, span })
            }
            other => Err(QueryError::at(start, format!("expected `key = value` in WITH (...), found `{other}`"))),
        })
        .collect()
}

/// The text of a literal: a string, a number, a boolean or a bare word.
pub fn literal_text(expr: &Expr) -> Result<String, QueryError> {
    use sqlparser::ast::Spanned;
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            Value::Number(n, _) => Ok(n.to_string()),
            Value::Boolean(b) => Ok(b.to_string()),
            other => Err(QueryError::at(expr.span(), format!("expected a string or a number, found `{other}`"))),
        },
        Expr::Identifier(ident) => Ok(ident.value.clone()),
        Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Minus, expr: inner } => {
            Ok(format!("-{}", literal_text(inner)?))
        }
        other => Err(QueryError::at(other.span(), format!("expected a string or a number, found `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_statement_kind() {
        let job = parse_job(
            "CREATE SOURCE cams FROM DIRECTORY 'data/frames' WITH (watch = true, lateness = '5s');
             CREATE STREAM d AS SELECT * FROM DETECT(cams, model => 'objects');
             CREATE VIEW v AS SELECT label, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '10' SECOND) GROUP BY label, window_start;
             CREATE SINK out FROM v INTO FILE 'out/v.jsonl';",
        )
        .unwrap();
        assert_eq!(job.len(), 4);
        let Statement::CreateSource { name, kind, location, options } = &job[0] else { panic!("{:?}", job[0]) };
        assert_eq!(
            (name.value.as_str(), kind.value.as_str(), location.as_deref()),
            ("cams", "DIRECTORY", Some("data/frames"))
        );
        assert_eq!(
            options.iter().map(|o| (o.key.value.as_str(), o.value.as_str())).collect::<Vec<_>>(),
            [("watch", "true"), ("lateness", "5s")]
        );
        assert!(matches!(&job[3], Statement::CreateSink { input, .. } if input.value == "v"));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let e = parse_job("CREATE SOURCE cams FROM DIRECTORY 'x';\nCREATE TABLE t (a int);").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8), "{e}");
        assert!(e.message.contains("expected SOURCE, STREAM, VIEW or SINK"), "{e}");
        let e =
            parse_job("CREATE STREAM d AS SELECT * FROM DETECT(cams, model => 'x' min_confidence => 0.3)").unwrap_err();
        assert_eq!((e.line, e.column), (1, 60), "{e}");
    }
}
