//! The NYC taxi DataFrame workload (the original's Fig. 7/8): a synthetic 19-column trip
//! table with the real schema, and the 8 queries of the original, on `RemVec` columns with
//! offloaded operations (or, with `--all-local`, on `Vec` columns).
//!
//! ```text
//! cargo run --release --example nyc_taxi -- --help
//! cargo run --release --example nyc_taxi -- --local-mib 16 --scale 0.5
//! cargo run --release --example nyc_taxi -- --local-mib 16 --no-offload
//! ```
//!
//! Throughput is queries per second over the whole 8-query run.

#[path = "common/mod.rs"]
mod common;

use aifm::collections::vec::{AggValue, Aggregate, GroupKey, Numeric};
use aifm::collections::{Exec, RemVec};
use aifm::Runtime;
use clap::Parser;
use common::{report, Common, Outcome, Timer, XorShift};
use std::collections::BTreeMap;

/// The NYC taxi queries on a synthetic trip table.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Trips at scale 1.0.
    #[arg(long, default_value_t = 2_000_000)]
    rows: usize,
    /// Run every operation locally (fetching columns) instead of offloading to far memory.
    #[arg(long)]
    no_offload: bool,
}

/// A column: a `Vec` (all-local) or a `RemVec` (far memory), behind one query vocabulary.
enum Column<T: Numeric> {
    Local(Vec<T>),
    Far(RemVec<T>, Exec),
}

/// Where new columns go.
#[derive(Clone)]
enum Store {
    Local,
    Far(Runtime, Exec),
}

impl Store {
    fn column<T: Numeric>(&self) -> Column<T> {
        match self {
            Store::Local => Column::Local(Vec::new()),
            Store::Far(rt, exec) => Column::Far(RemVec::new_in(rt), *exec),
        }
    }
}

fn local_agg<T: Numeric>(xs: &[T], agg: Aggregate) -> Option<AggValue<T>> {
    let f = |x: &T| x.to_f64();
    Some(match agg {
        Aggregate::Count => AggValue::Count(xs.len() as u64),
        Aggregate::Min => AggValue::Min(*xs.iter().min_by(|a, b| a.total_cmp(b))?),
        Aggregate::Max => AggValue::Max(*xs.iter().max_by(|a, b| a.total_cmp(b))?),
        Aggregate::Mean if xs.is_empty() => return None,
        Aggregate::Mean => AggValue::Mean(xs.iter().map(f).sum::<f64>() / xs.len() as f64),
        Aggregate::Median if xs.is_empty() => return None,
        Aggregate::Median => {
            let mut v = xs.to_vec();
            let mid = (v.len() - 1) / 2;
            AggValue::Median(*v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1)
        }
        Aggregate::Sum => AggValue::Sum(xs.iter().fold(T::Sum::default(), |s, &x| T::add(s, x))),
    })
}

impl<T: Numeric> Column<T> {
    fn push(&mut self, x: T) {
        match self {
            Column::Local(v) => v.push(x),
            Column::Far(v, _) => v.push(x),
        }
    }
    fn len(&self) -> usize {
        match self {
            Column::Local(v) => v.len(),
            Column::Far(v, _) => v.len(),
        }
    }
    fn agg(&self, agg: Aggregate) -> Option<AggValue<T>> {
        match self {
            Column::Local(v) => local_agg(v, agg),
            Column::Far(v, exec) => v.try_aggregate(agg, *exec).expect("far memory failed"),
        }
    }
    fn group_by<K: GroupKey>(&self, keys: &Column<K>, agg: Aggregate) -> BTreeMap<K, AggValue<T>> {
        match (self, keys) {
            (Column::Local(v), Column::Local(k)) => {
                let mut groups: BTreeMap<K, Vec<T>> = BTreeMap::new();
                k.iter()
                    .zip(v)
                    .for_each(|(k, x)| groups.entry(*k).or_default().push(*x));
                groups
                    .into_iter()
                    .filter_map(|(k, xs)| Some((k, local_agg(&xs, agg)?)))
                    .collect()
            }
            (Column::Far(v, exec), Column::Far(k, _)) => {
                v.try_group_by(k, agg, *exec).expect("far memory failed")
            }
            _ => unreachable!("columns of one table share a store"),
        }
    }
    /// The rows named by `idx` (a filter's result).
    fn gather(&self, idx: &Column<u64>) -> Column<T> {
        match (self, idx) {
            (Column::Local(v), Column::Local(i)) => {
                Column::Local(i.iter().map(|&i| v[i as usize]).collect())
            }
            (Column::Far(v, exec), Column::Far(i, _)) => {
                Column::Far(v.try_gather(i, *exec).expect("far memory failed"), *exec)
            }
            _ => unreachable!("columns of one table share a store"),
        }
    }
    /// The elements in order (a nontemporal, chunk-wise scan for far columns).
    fn iter(&self) -> Box<dyn Iterator<Item = T> + '_> {
        match self {
            Column::Local(v) => Box::new(v.iter().copied()),
            Column::Far(v, _) => Box::new(v.iter_nt()),
        }
    }
    /// A new column `f(self[i], other[i])`.
    fn zip_map<U: Numeric, R: Numeric>(
        &self,
        other: &Column<U>,
        store: &Store,
        f: impl Fn(T, U) -> R,
    ) -> Column<R> {
        let mut out = store.column();
        self.iter()
            .zip(other.iter())
            .for_each(|(x, y)| out.push(f(x, y)));
        out
    }
    fn map<R: Numeric>(&self, store: &Store, f: impl Fn(T) -> R) -> Column<R> {
        let mut out = store.column();
        self.iter().for_each(|x| out.push(f(x)));
        out
    }
}

/// The 19 columns of the yellow-cab trip records.
struct Trips {
    vendor_id: Column<u8>,
    pickup: Column<i64>,
    dropoff: Column<i64>,
    passenger_count: Column<u8>,
    trip_distance: Column<f64>,
    pickup_longitude: Column<f64>,
    pickup_latitude: Column<f64>,
    rate_code: Column<u8>,
    store_and_fwd: Column<u8>,
    dropoff_longitude: Column<f64>,
    dropoff_latitude: Column<f64>,
    payment_type: Column<u8>,
    fare_amount: Column<f64>,
    extra: Column<f64>,
    mta_tax: Column<f64>,
    tip_amount: Column<f64>,
    tolls_amount: Column<f64>,
    improvement_surcharge: Column<f64>,
    total_amount: Column<f64>,
}

/// 2016-01-01T00:00:00Z.
const EPOCH_2016: i64 = 1_451_606_400;

fn generate(store: &Store, rows: usize, seed: u64, bar: &indicatif::ProgressBar) -> Trips {
    let mut r = XorShift::new(seed | 1);
    let mut t = Trips {
        vendor_id: store.column(),
        pickup: store.column(),
        dropoff: store.column(),
        passenger_count: store.column(),
        trip_distance: store.column(),
        pickup_longitude: store.column(),
        pickup_latitude: store.column(),
        rate_code: store.column(),
        store_and_fwd: store.column(),
        dropoff_longitude: store.column(),
        dropoff_latitude: store.column(),
        payment_type: store.column(),
        fare_amount: store.column(),
        extra: store.column(),
        mta_tax: store.column(),
        tip_amount: store.column(),
        tolls_amount: store.column(),
        improvement_surcharge: store.column(),
        total_amount: store.column(),
    };
    for i in 0..rows {
        let vendor = 1 + (r.unit() < 0.53) as u8;
        let pickup = EPOCH_2016 + r.below(182 * 86_400) as i64;
        let minutes = -(1.0 - r.unit()).ln() * 13.0 + 1.0; // exponential trip length
        let dropoff = pickup + (minutes * 60.0) as i64;
        let pc = match r.unit() {
            u if u < 0.005 => 0,
            u if u < 0.71 => 1,
            u if u < 0.85 => 2,
            u if u < 0.89 => 3,
            u if u < 0.91 => 4,
            u if u < 0.96 => 5,
            _ => 6,
        };
        let distance = (minutes / 4.0 * (0.5 + r.unit())).min(100.0);
        // Around Manhattan; 1 % of records carry bogus coordinates (0,0), as the real data does.
        let bogus = r.unit() < 0.01;
        let (plon, plat) = if bogus {
            (0.0, 0.0)
        } else {
            (
                -73.98 + (r.unit() - 0.5) * 0.2,
                40.75 + (r.unit() - 0.5) * 0.2,
            )
        };
        let (dlon, dlat) = (
            -73.98 + (r.unit() - 0.5) * 0.3,
            40.75 + (r.unit() - 0.5) * 0.3,
        );
        let payment = 1 + (r.unit() < 0.32) as u8;
        let fare = (2.5 + 2.5 * distance + 0.5 * minutes).round();
        let extra = [0.0, 0.5, 1.0][r.below(3) as usize];
        let tip = if payment == 1 {
            (fare * (0.1 + 0.15 * r.unit()) * 100.0).round() / 100.0
        } else {
            0.0
        };
        let tolls = if r.unit() < 0.05 { 5.54 } else { 0.0 };
        t.vendor_id.push(vendor);
        t.pickup.push(pickup);
        t.dropoff.push(dropoff);
        t.passenger_count.push(pc);
        t.trip_distance.push(distance);
        t.pickup_longitude.push(plon);
        t.pickup_latitude.push(plat);
        t.rate_code.push(if r.unit() < 0.97 {
            1
        } else {
            2 + r.below(4) as u8
        });
        t.store_and_fwd.push((r.unit() < 0.005) as u8);
        t.dropoff_longitude.push(dlon);
        t.dropoff_latitude.push(dlat);
        t.payment_type.push(payment);
        t.fare_amount.push(fare);
        t.extra.push(extra);
        t.mta_tax.push(0.5);
        t.tip_amount.push(tip);
        t.tolls_amount.push(tolls);
        t.improvement_surcharge.push(0.3);
        t.total_amount.push(fare + extra + 0.5 + tip + tolls + 0.3);
        if i % 65_536 == 0 {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();
    t
}

fn haversine_km(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().asin()
}

/// Month (1..=12) of a Unix timestamp (civil-from-days).
fn month_of(ts: i64) -> u8 {
    let z = ts.div_euclid(86_400) + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    (if mp < 10 { mp + 3 } else { mp - 9 }) as u8
}

/// Runs the 8 queries; returns a digest of their answers (identical across systems) and the
/// seconds each took.
fn queries(t: &Trips, store: &Store) -> (Vec<String>, Vec<f64>) {
    let mut answers = Vec::new();
    let mut times = Vec::new();
    let mut q = |f: &mut dyn FnMut() -> String| {
        let timer = Timer::start();
        answers.push(f());
        times.push(timer.seconds());
    };
    // Q1: counts and unique values.
    q(&mut || {
        let vendors = t.vendor_id.group_by(&t.vendor_id, Aggregate::Count);
        let pcs = t
            .passenger_count
            .group_by(&t.passenger_count, Aggregate::Count);
        format!(
            "rows={} vendors={:?} passenger_counts={:?}",
            t.vendor_id.len(),
            vendors.keys().collect::<Vec<_>>(),
            pcs.keys().collect::<Vec<_>>()
        )
    });
    // Q2: passenger-count histogram per vendor (key = vendor * 16 + passengers).
    q(&mut || {
        let key = t
            .vendor_id
            .zip_map(&t.passenger_count, store, |v, p| v as u16 * 16 + p as u16);
        let h = t.passenger_count.group_by(&key, Aggregate::Count);
        format!("{h:?}")
    });
    // Q3: trip duration column, with max, min and mean.
    let duration = t.dropoff.zip_map(&t.pickup, store, |d, p| d - p);
    q(&mut || {
        format!(
            "duration max={:?} min={:?} mean={:?}",
            duration.agg(Aggregate::Max),
            duration.agg(Aggregate::Min),
            duration.agg(Aggregate::Mean)
        )
    });
    // Q4: flag fractions.
    q(&mut || {
        let n = t.store_and_fwd.len() as f64;
        let y = match t.store_and_fwd.agg(Aggregate::Sum) {
            Some(AggValue::Sum(s)) => s as f64,
            _ => 0.0,
        };
        format!("store_and_fwd={:.5}", y / n)
    });
    // Q5: haversine distance, and the trips over 100 km (a filter: gather by index).
    q(&mut || {
        let mut km: Column<f64> = store.column();
        let mut far: Column<u64> = store.column();
        let coords = t.pickup_longitude.iter().zip(t.pickup_latitude.iter());
        let coords = coords
            .zip(t.dropoff_longitude.iter())
            .zip(t.dropoff_latitude.iter());
        for (r, (((plon, plat), dlon), dlat)) in coords.enumerate() {
            let d = haversine_km(plon, plat, dlon, dlat);
            km.push(d);
            if d > 100.0 {
                far.push(r as u64);
            }
        }
        let fares = t.fare_amount.gather(&far);
        format!(
            "long_trips={} mean_km={:?} their_fare_mean={:?}",
            far.len(),
            km.agg(Aggregate::Mean),
            fares.agg(Aggregate::Mean)
        )
    });
    // Q6: pickup min/max, hour/day/month columns and their histograms.
    let day = t.pickup.map(store, |ts| {
        ((ts.div_euclid(86_400) + 4).rem_euclid(7)) as u8
    });
    let month = t.pickup.map(store, month_of);
    q(&mut || {
        let hour = t
            .pickup
            .map(store, |ts| (ts.rem_euclid(86_400) / 3600) as u8);
        format!(
            "pickup min={:?} max={:?} hours={:?} days={:?} months={:?}",
            t.pickup.agg(Aggregate::Min),
            t.pickup.agg(Aggregate::Max),
            hour.group_by(&hour, Aggregate::Count),
            day.group_by(&day, Aggregate::Count),
            month.group_by(&month, Aggregate::Count)
        )
    });
    // Q7, Q8: median duration by day of week, and by month.
    q(&mut || format!("{:?}", duration.group_by(&day, Aggregate::Median)));
    q(&mut || format!("{:?}", duration.group_by(&month, Aggregate::Median)));
    (answers, times)
}

fn main() {
    let args = Args::parse();
    let c = &args.common;
    let rows = ((args.rows as f64 * c.scale) as usize).max(1000);
    let exec = if args.no_offload {
        Exec::Local
    } else {
        Exec::Auto
    };
    let rt = (!c.all_local).then(|| c.runtime());
    let store = match &rt {
        None => Store::Local,
        Some(rt) => Store::Far(rt.clone(), exec),
    };
    let bar = c.progress(rows as u64, "generating");
    let trips = generate(&store, rows, c.seed, &bar);
    let data_mib = rows as f64 * (11.0 * 8.0 + 2.0 * 8.0 + 6.0) / (1 << 20) as f64;
    let timer = Timer::start();
    let (answers, times) = queries(&trips, &store);
    let seconds = timer.seconds();
    if !c.quiet {
        for (i, (a, s)) in answers.iter().zip(&times).enumerate() {
            let a: String = a.chars().take(150).collect();
            println!("Q{} ({s:.3} s): {a}", i + 1);
        }
    }
    let digest = answers.iter().fold(0u64, |h, a| {
        a.bytes()
            .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    });
    report(
        c,
        rt.as_ref(),
        Outcome {
            workload: "nyc_taxi",
            data_mib,
            ops: answers.len() as f64,
            seconds,
            unit: "queries/s",
            extra: serde_json::json!({
                "variant": if args.no_offload { "no-offload" } else { "offload" },
                "rows": rows,
                "query_seconds": times,
                "answer_digest": format!("{digest:016x}"),
            }),
        },
    );
}
