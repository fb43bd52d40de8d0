//! Multi-row `INSERT` statements with few distinct texts.
//!
//! The decision log's writer inserts a batch's entries and subtrees many
//! rows per statement. One text per batch size would give each
//! connection dozens of statements that keep evicting each other from
//! sqlx's statement cache; splitting every batch the same way keeps the
//! texts to a handful, each prepared once per connection.

/// How a batch of `n` rows is split into statements: full statements of
/// `max` rows, then the rest by powers of two (37 → 32 + 4 + 1). So only
/// a handful of distinct statement texts exist (7 for 64), each prepared
/// once per connection and then reused from sqlx's statement cache,
/// where one text per batch size would keep evicting each other.
pub(crate) fn sizes(n: usize, max: usize) -> impl Iterator<Item = usize> {
    debug_assert!(max.is_power_of_two());
    let full = n / max;
    let rest = n % max;
    std::iter::repeat_n(max, full).chain(
        (0..max.trailing_zeros())
            .rev()
            .map(|bit| 1usize << bit)
            .filter(move |size| rest & size != 0),
    )
}

/// `INSERT … VALUES ($1, …), …` for `rows` rows of `columns` columns,
/// made once per (text, size) for the life of the process.
pub(crate) fn insert_sql(prefix: &'static str, columns: usize, rows: usize) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Texts = HashMap<(&'static str, usize, usize), &'static str>;
    static MADE: OnceLock<Mutex<Texts>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    made.entry((prefix, columns, rows)).or_insert_with(|| {
        let mut sql = String::from(prefix);
        for row in 0..rows {
            sql.push_str(if row > 0 { ", (" } else { "(" });
            for col in 0..columns {
                if col > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&(row * columns + col + 1).to_string());
            }
            sql.push(')');
        }
        // Bounded: a few prefixes times the power-of-two sizes.
        Box::leak(sql.into_boxed_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_split_into_full_statements_then_powers_of_two() {
        let split = |n| sizes(n, 64).collect::<Vec<_>>();
        assert_eq!(split(0), Vec::<usize>::new());
        assert_eq!(split(1), [1]);
        assert_eq!(split(37), [32, 4, 1]);
        assert_eq!(split(64), [64]);
        assert_eq!(split(200), [64, 64, 64, 8]);
        for n in 0..300 {
            assert_eq!(split(n).iter().sum::<usize>(), n);
        }
    }
}
