//! The writer's binary COPY encoding ([`scansync::write::copy`]) lands every value as the
//! text form it replaced would have: numbers with the same digits and display scale,
//! instants at the same microsecond, arrays and JSON alike. Checked by the server itself,
//! for the counts the parse stage can produce (arbitrary decimal text through its
//! `normalize_decimal`) and the edges of the instants it accepts.

use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use scansync::parse::number::normalize_decimal;
use scansync::time::Timestamp;
use scansync::write::copy::{framed, CopyBuf};
use tokio_postgres::Client;

/// COPYs one binary row of `encode`d fields into `t`, returns what the server reads back of
/// it, `select`ed as text, and empties the table.
async fn roundtrip(client: &Client, select: &str, encode: impl FnOnce(&mut CopyBuf)) -> Vec<Option<String>> {
    use futures_util::SinkExt;
    let mut b = CopyBuf::new();
    encode(&mut b);
    b.end_row();
    let sink = client.copy_in::<_, bytes::Bytes>("copy t from stdin with (format binary)").await.unwrap();
    futures_util::pin_mut!(sink);
    for part in framed(b.into_bytes().into()) {
        sink.feed(part).await.unwrap();
    }
    sink.finish().await.unwrap();
    let row = client.query_one(&format!("select {select} from t"), &[]).await.unwrap();
    client.batch_execute("truncate t").await.unwrap();
    (0..row.len()).map(|i| row.get(i)).collect()
}

/// Decimal text of every shape a count arrives in: signs, leading and trailing zeros, bare
/// fractions, exponents of both signs, 30-digit integers.
fn decimal_text() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(""), Just("-"), Just("+")],
        "[0-9]{0,30}",
        prop::option::of("[0-9]{0,12}"),
        prop::option::of((
            prop_oneof![Just("e"), Just("E")],
            prop_oneof![Just(""), Just("+"), Just("-")],
            0u32..60,
        )),
    )
        .prop_map(|(sign, int, frac, exp)| {
            let mut s = format!("{sign}{int}");
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some((e, es, v)) = exp {
                s.push_str(&format!("{e}{es}{v}"));
            }
            s
        })
}

#[test]
fn a_count_copied_in_binary_is_the_number_and_scale_its_text_makes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let client = rt.block_on(db.client());
    rt.block_on(client.batch_execute("create table t (n numeric)")).unwrap();
    let fixed = [
        "0",
        "-0",
        "-0.000",
        "1",
        "-1",
        "12.50",
        "10000",
        "0.0001",
        "99999999",
        "1.5e+3",
        "1.5e-3",
        "-7e-1000",
        "123456789012345678901234567890",
        "0.000000000000000000001",
        "1e+1000",
    ];
    let check = |s: &str| -> Result<(), TestCaseError> {
        let Some(d) = normalize_decimal(s) else { return Ok(()) };
        let want: String =
            rt.block_on(client.query_one("select $1::text::numeric::text", &[&d])).unwrap().get(0);
        let got = rt.block_on(roundtrip(&client, "n::text", |b| {
            b.begin_row(1);
            b.numeric(Some(&d));
        }));
        prop_assert_eq!(got, vec![Some(want)], "{:?} (normalized {:?})", s, d);
        Ok(())
    };
    for s in fixed {
        check(s).unwrap();
    }
    TestRunner::new(Config::with_cases(300)).run(&decimal_text(), |s| check(&s)).unwrap();
}

#[test]
fn instants_texts_arrays_and_json_copied_in_binary_read_back_as_their_text_forms() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let client = rt.block_on(db.client());
    rt.block_on(client.batch_execute(
        "set timezone = 'UTC'; create table t (at timestamptz, s text, tags text[], meta jsonb, n bigint)",
    ))
    .unwrap();
    let year = 365 * 86_400_000_000i64;
    for micros in
        [0, -1, 1, 946_684_800_000_000, 946_684_799_999_999, 1_767_225_599_999_999, -1970 * year, 8000 * year]
    {
        let t = Timestamp(micros);
        let want: String = rt
            .block_on(client.query_one("select $1::text::timestamptz::text", &[&t.to_pg()]))
            .unwrap()
            .get(0);
        let got = rt.block_on(roundtrip(&client, "at::text", |b| {
            b.begin_row(5);
            b.instant(Some(t));
            (0..4).for_each(|_| b.null());
        }));
        assert_eq!(got, vec![Some(want)], "{micros} µs");
    }
    let tags = vec!["a,b".to_string(), "\"q\"".into(), "{x}".into(), "é🎉".into(), "back\\slash".into()];
    let got = rt.block_on(roundtrip(&client, "at::text, s, (tags = $${\"a,b\",\"\\\"q\\\"\",\"{x}\",é🎉,\"back\\\\slash\"}$$::text[])::text, cardinality(tags)::text, meta::text, n::text", |b| {
        b.begin_row(5);
        b.instant(None);
        b.text("tab\there\nnewline \\ and é");
        b.text_array(&tags);
        b.jsonb(Some(r#"{"b": [1, 2.50, "\u00e9"], "a": null}"#));
        b.int(Some(-9_007_199_254_740_993));
    }));
    assert_eq!(
        got,
        vec![
            None,
            Some("tab\there\nnewline \\ and é".into()),
            Some("true".into()),
            Some("5".into()),
            Some(r#"{"a": null, "b": [1, 2.50, "é"]}"#.into()),
            Some("-9007199254740993".into()),
        ]
    );
    let empty = rt.block_on(roundtrip(&client, "tags::text, s", |b| {
        b.begin_row(5);
        b.instant(None);
        b.opt(None);
        b.text_array(&[]);
        b.jsonb(None);
        b.int(None);
    }));
    assert_eq!(empty, vec![Some("{}".into()), None]);
}
