//! `?` placeholders (JDBC, ODBC, ADBC style) → DataFusion's positional `$1`, `$2`, ….
//!
//! Done on tokens, not text: a `?` inside a string literal, quoted identifier or comment is
//! left alone.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::QueryError;

/// `sql` with each bare `?` numbered in order. SQL without `?` is returned unchanged.
pub fn number_question_marks(sql: &str) -> Result<String, QueryError> {
    if !sql.contains('?') {
        return Ok(sql.to_owned());
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| QueryError::InvalidSql(format!("SQL error: {e}")))?;
    let mut next = 0;
    let mut out = String::with_capacity(sql.len() + 8);
    for token in tokens {
        match token {
            Token::Placeholder(p) if p == "?" => {
                next += 1;
                out.push_str(&format!("${next}"));
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_bare_question_marks_only() {
        assert_eq!(
            number_question_marks("SELECT '?' AS q, \"a?\" FROM t WHERE x = ? AND y IN (?, ?) -- ?").unwrap(),
            "SELECT '?' AS q, \"a?\" FROM t WHERE x = $1 AND y IN ($2, $3) -- ?"
        );
        assert_eq!(number_question_marks("SELECT $1").unwrap(), "SELECT $1");
    }
}
