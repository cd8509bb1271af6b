//! Kafka in and out (feature `kafka`, librdkafka built from source).
//!
//! **Source**: `CREATE SOURCE cams FROM KAFKA 'frames' WITH (brokers =
//! '127.0.0.1:9092', group = 'frameflow')`. A message is a frame: its key
//! the camera (`source_id`), its value the image (JPEG, PNG or WebP, told
//! by its bytes), its event time the `event_time` header (ms since the
//! epoch, or RFC 3339) or else the message's timestamp.
//! - Partitions are spread over workers (partition `p` to worker
//!   `p % workers`); a camera's frames, in one partition, stay in order.
//! - A frame's id is a hash of topic, partition and offset: a replay gives
//!   the same ids.
//! - Offsets are the journal: a checkpoint records each partition's offset
//!   past the frames behind it, and commits it to the group once durable.
//!   A job starts from its checkpoint, else the group's committed offsets,
//!   else the earliest.
//! - When the in-flight budget is full the engine stops polling and the
//!   source pauses its partitions until the next poll; even unpaused,
//!   librdkafka fetches no more than `queued.max.messages.kbytes` (16 MiB
//!   here) ahead, so memory stays bounded.
//! - `until = 'end'` reads each partition until the consumer first
//!   reaches its end, ignores what is written after, and finishes (for
//!   backfills and tests); by default the source runs until stopped.
//! - Options: `brokers`, `group`, `until`, `idle_timeout` (a camera quiet
//!   that long stops holding back the others), `tenant`, `lateness`, `late`.
//!
//! **Sink**: `CREATE SINK out FROM counts INTO KAFKA 'counts' WITH (brokers
//! = '...', delivery = 'at_least_once' | 'exactly_once')`. Rows as the JSON
//! of the FILE sink, each with a stable key: a detection's frame, operator
//! and box; a view row's view, group and window; an outcome's frame and
//! stage. A replayed row thus overwrites itself on a compacted topic. In a
//! durable job (`--durable`) a checkpoint records where the topic's
//! partitions end; a restarted job reads what was written after that, and
//! skips those rows when its replay comes to them: the topic gets each row
//! once.
//!
//! With `delivery = 'exactly_once'` rows are written in Kafka transactions,
//! committed at each checkpoint (and at the end); a restarted job's
//! producer fences the old one and aborts its open transaction
//! (`transactional_id` defaults to the sink's name), so a `read_committed`
//! consumer does not see rows that a crash cut off before their checkpoint
//! (without transactions such rows are there, and written once).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use engine::checkpoint::{Positions, SourceContext};
use engine::model::{Frame, MediaType, Record, stable_hash};
use engine::plan::{SinkSpec, SourceSpec};
use engine::registry::{Partition, Sink, SinkFactory, Source, SourceFactory, SourcePoll};
use engine::time::{Millis, now_ms, parse_rfc3339_ms};
use engine::watermark::CameraWatermarks;

use crate::options::{parse_duration, reject_unknown};

const TIMEOUT: Duration = Duration::from_secs(10);

struct SourceConfig {
    topic: String,
    brokers: String,
    group: String,
    until_end: bool,
    idle: Option<Duration>,
}

impl SourceConfig {
    fn from_spec(spec: &SourceSpec) -> Result<SourceConfig, String> {
        reject_unknown(&spec.options, &["brokers", "group", "until", "idle_timeout", "tenant", "lateness", "late"])?;
        let option = |name: &str| spec.options.get(name).cloned();
        let until_end = match option("until").as_deref() {
            None | Some("never") => false,
            Some("end") => true,
            Some(other) => return Err(format!("until = '{other}' is not 'end' or 'never'")),
        };
        Ok(SourceConfig {
            topic: spec.location.clone().ok_or("KAFKA needs a topic: FROM KAFKA 'frames'")?,
            brokers: option("brokers").unwrap_or_else(|| "127.0.0.1:9092".into()),
            group: option("group").unwrap_or_else(|| format!("frameflow-{}", spec.name)),
            until_end,
            idle: option("idle_timeout").map(|v| parse_duration("idle_timeout", &v)).transpose()?,
        })
    }

    fn consumer(&self) -> Result<BaseConsumer, String> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("queued.max.messages.kbytes", "16384")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(|e| format!("cannot connect to Kafka at {}: {e}", self.brokers))
    }
}

#[derive(Debug, Default)]
pub struct KafkaSourceFactory;

impl SourceFactory for KafkaSourceFactory {
    fn validate(&self, spec: &SourceSpec) -> Result<(), String> {
        let config = SourceConfig::from_spec(spec)?;
        partitions(&config.consumer()?, &config.topic).map(|_| ())
    }

    fn open(&self, spec: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        self.open_at(spec, partition, &SourceContext::default())
    }

    fn open_at(
        &self,
        spec: &SourceSpec,
        partition: Partition,
        context: &SourceContext,
    ) -> Result<Box<dyn Source>, String> {
        let config = SourceConfig::from_spec(spec)?;
        let consumer = config.consumer()?;
        let mine: Vec<i32> = partitions(&consumer, &config.topic)?
            .into_iter()
            .filter(|p| *p as usize % partition.workers == partition.worker)
            .collect();
        let mut committed_list = TopicPartitionList::new();
        for p in &mine {
            committed_list.add_partition(&config.topic, *p);
        }
        let committed = consumer.committed_offsets(committed_list, TIMEOUT).map_err(|e| format!("{e}"))?;
        let mut assignment = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        for p in &mine {
            let from_checkpoint = context.positions.get(&position_key(*p)).and_then(|o| o.parse::<i64>().ok());
            let from_group = committed
                .find_partition(&config.topic, *p)
                .and_then(|e| if let Offset::Offset(o) = e.offset() { Some(o) } else { None });
            let (low, _) = consumer.fetch_watermarks(&config.topic, *p, TIMEOUT).map_err(|e| format!("{e}"))?;
            let start = from_checkpoint.or(from_group).unwrap_or(low).max(low);
            assignment
                .add_partition_offset(&config.topic, *p, Offset::Offset(start))
                .map_err(|e| format!("cannot assign partition {p}: {e}"))?;
            next.insert(*p, start);
        }
        consumer.assign(&assignment).map_err(|e| format!("cannot assign partitions: {e}"))?;
        Ok(Box::new(KafkaSource {
            consumer,
            topic: config.topic.clone(),
            tenant: spec.tenant.as_str().into(),
            until_end: config.until_end,
            idle: config.idle,
            cameras: Cameras { watermarks: CameraWatermarks::new(spec.lateness_ms), seen: BTreeMap::new() },
            next,
            reached_end: HashSet::new(),
            paused: false,
            polls: VecDeque::new(),
            forgotten: 0,
            done: next_positions(&context.positions).into_iter().filter(|(p, _)| mine.contains(p)).collect(),
            checkpointed: VecDeque::new(),
        }))
    }
}

fn position_key(partition: i32) -> String {
    format!("partition-{partition}")
}

fn next_positions(positions: &Positions) -> BTreeMap<i32, i64> {
    positions.iter().filter_map(|(k, v)| Some((k.strip_prefix("partition-")?.parse().ok()?, v.parse().ok()?))).collect()
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, String> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| format!("cannot reach Kafka: {e}"))?;
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => Err(format!("Kafka topic `{topic}` does not exist")),
    }
}

impl KafkaSource {
    /// Resumes paused partitions at the next offsets this source has not
    /// read. librdkafka drops what it fetched ahead at a pause, and on
    /// resume fetched from further on than this source had read (frames
    /// were lost until the seek was added), so the offsets are set here.
    fn resume(&mut self) -> Result<(), String> {
        let mut at = TopicPartitionList::new();
        for (p, next) in &self.next {
            at.add_partition_offset(&self.topic, *p, Offset::Offset(*next))
                .map_err(|e| format!("cannot resume partition {p}: {e}"))?;
        }
        self.consumer.resume(&at).map_err(|e| format!("cannot resume Kafka partitions: {e}"))?;
        let sought =
            self.consumer.seek_partitions(at, TIMEOUT).map_err(|e| format!("cannot resume Kafka partitions: {e}"))?;
        // Failures of single partitions come back in the list.
        match sought.elements().iter().find_map(|e| e.error().err().map(|error| (e.partition(), error))) {
            Some((p, error)) => Err(format!("cannot resume Kafka partition {p}: {error}")),
            None => Ok(()),
        }
    }
}

struct KafkaSource {
    consumer: BaseConsumer,
    topic: String,
    tenant: Arc<str>,
    until_end: bool,
    idle: Option<Duration>,
    cameras: Cameras,
    /// Per assigned partition, the offset of the next message to read.
    next: BTreeMap<i32, i64>,
    /// Partitions whose end the consumer reached (for `until = 'end'`).
    reached_end: HashSet<i32>,
    /// Paused because the engine had no room; resumed at the next poll.
    paused: bool,
    /// Per poll not yet behind a checkpoint: partitions' next offsets.
    polls: VecDeque<Vec<(i32, i64)>>,
    forgotten: u64,
    /// Per partition, the offset behind the latest checkpoint.
    done: BTreeMap<i32, i64>,
    /// Checkpoints not yet durable: polls, and the offsets to commit.
    checkpointed: VecDeque<(u64, BTreeMap<i32, i64>)>,
}

impl KafkaSource {
    /// Whether `until = 'end'` is met: every partition has reported its
    /// end while fetching. Offsets are not compared with the end listed at
    /// start: transaction markers take offsets and are never delivered,
    /// and tansu 0.6 lists a latest offset short of the true end (the last
    /// batch's base offset plus one; ending there lost that batch's rest).
    fn at_end(&self) -> bool {
        self.until_end && self.next.keys().all(|p| self.reached_end.contains(p))
    }
}

/// What a source knows of its cameras.
struct Cameras {
    watermarks: CameraWatermarks,
    /// Per camera: frames seen, and when the last came.
    seen: BTreeMap<Arc<str>, (u64, Instant)>,
}

impl Cameras {
    fn frame(&mut self, topic: &str, tenant: &Arc<str>, message: &rdkafka::message::BorrowedMessage<'_>) -> Frame {
        let bytes = message.payload().unwrap_or_default();
        let source_id: Arc<str> = message.key().map(String::from_utf8_lossy).map_or("unknown".into(), |k| k.into());
        let header_time = message.headers().and_then(|headers| {
            let header = headers.iter().find(|h| h.key == "event_time")?;
            let text = std::str::from_utf8(header.value?).ok()?.trim().to_owned();
            text.parse::<Millis>().ok().or_else(|| parse_rfc3339_ms(&text).ok())
        });
        let event_time = header_time.or(message.timestamp().to_millis()).unwrap_or_else(now_ms);
        let media_type = sniff(bytes);
        let refused = media_type.is_none().then(|| "the message is not a JPEG, PNG or WebP image".to_owned());
        let (seen, _) = *self.seen.get(&source_id).unwrap_or(&(0, Instant::now()));
        self.seen.insert(source_id.clone(), (seen + 1, Instant::now()));
        let late = if refused.is_none() { self.watermarks.observe(&source_id, event_time) } else { None };
        let id = stable_hash(&[topic.as_bytes(), &message.partition().to_le_bytes(), &message.offset().to_le_bytes()]);
        Frame {
            frame_id: format!("{id:016x}").into(),
            tenant: tenant.clone(),
            source_id,
            seq: seen,
            event_time,
            ingest_time: now_ms(),
            media_type: media_type.unwrap_or(MediaType::Jpeg),
            bytes: bytes.into(),
            late,
            refused,
        }
    }
}

fn sniff(bytes: &[u8]) -> Option<MediaType> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(MediaType::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(MediaType::Png)
    } else if bytes.len() > 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(MediaType::Webp)
    } else {
        None
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if std::mem::take(&mut self.paused) {
            self.resume()?;
        }
        let mut frames = Vec::new();
        let mut moved: Vec<(i32, i64)> = Vec::new();
        while frames.len() < max && !self.at_end() {
            let Some(result) = self.consumer.poll(Duration::ZERO) else { break };
            let message = match result {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.reached_end.insert(partition);
                    continue;
                }
                Err(e) => return Err(format!("Kafka: {e}")),
            };
            let (partition, offset) = (message.partition(), message.offset());
            if self.until_end && self.reached_end.contains(&partition) {
                // Written after this partition's end was reached: past
                // the end this job reads to.
                continue;
            }
            let frame = self.cameras.frame(&self.topic, &self.tenant, &message);
            self.next.insert(partition, offset + 1);
            match moved.iter_mut().find(|(p, _)| *p == partition) {
                Some((_, next)) => *next = offset + 1,
                None => moved.push((partition, offset + 1)),
            }
            frames.push(frame);
        }
        if !frames.is_empty() {
            self.polls.push_back(moved);
            return Ok(SourcePoll::Frames(frames));
        }
        Ok(if self.at_end() { SourcePoll::Done } else { SourcePoll::Idle })
    }

    /// Stops fetching; the next `poll` resumes where this source stands.
    fn pause(&mut self) {
        let paused = self.consumer.assignment().and_then(|assigned| self.consumer.pause(&assigned));
        match paused {
            Ok(()) => self.paused = true,
            // Not fatal: the bounded fetch queue still holds it back.
            Err(e) => eprintln!("frameflow: cannot pause Kafka partitions: {e}"),
        }
    }

    fn watermark(&mut self) -> Option<Millis> {
        if self.at_end() {
            return None;
        }
        let idle = |last: &Instant| self.idle.is_some_and(|t| last.elapsed() >= t);
        let cameras = &self.cameras;
        let promise = cameras
            .seen
            .iter()
            .filter_map(|(camera, (_, last))| match idle(last) {
                true => Some(now_ms() - cameras.watermarks.lateness_ms()),
                false => cameras.watermarks.promise(camera, None),
            })
            .min();
        // Before the first frame nothing is known of the times to come.
        Some(promise.unwrap_or(0))
    }

    fn checkpoint(&mut self, polls: u64) -> Positions {
        let behind = polls.saturating_sub(self.forgotten) as usize;
        for poll in self.polls.drain(..behind.min(self.polls.len())) {
            self.done.extend(poll);
        }
        self.forgotten = self.forgotten.max(polls);
        self.checkpointed.push_back((polls, self.done.clone()));
        self.done.iter().map(|(p, o)| (position_key(*p), o.to_string())).collect()
    }

    fn committed(&mut self, polls: u64) {
        while let Some((n, offsets)) = self.checkpointed.pop_front_if(|(n, _)| *n <= polls) {
            if n != polls {
                continue;
            }
            let mut list = TopicPartitionList::new();
            for (p, o) in offsets {
                let _ = list.add_partition_offset(&self.topic, p, Offset::Offset(o));
            }
            // The group's offsets are for monitoring and for a job started
            // without its checkpoint; losing one commit loses nothing.
            if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
                eprintln!("frameflow: Kafka: cannot commit offsets: {e}");
            }
        }
    }
}

/// Delivery reports: the first failure, which fails the sink.
#[derive(Clone, Default)]
struct Deliveries {
    failure: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && let Ok(mut failure) = self.failure.lock()
        {
            failure.get_or_insert_with(|| format!("a row was not delivered: {e}"));
        }
    }
}

#[derive(Debug, Default)]
pub struct KafkaSinkFactory;

impl SinkFactory for KafkaSinkFactory {
    fn open(&self, spec: &SinkSpec, schema: SchemaRef) -> Result<Box<dyn Sink>, String> {
        self.resume(spec, schema, None)
    }

    fn resume(&self, spec: &SinkSpec, schema: SchemaRef, position: Option<&str>) -> Result<Box<dyn Sink>, String> {
        reject_unknown(&spec.options, &["brokers", "delivery", "transactional_id"])?;
        let option = |name: &str| spec.options.get(name).cloned();
        let topic = spec.location.clone().ok_or("KAFKA needs a topic: INTO KAFKA 'counts'")?;
        let brokers = option("brokers").unwrap_or_else(|| "127.0.0.1:9092".into());
        let exactly_once = match option("delivery").as_deref() {
            None | Some("at_least_once") => false,
            Some("exactly_once") => true,
            Some(other) => return Err(format!("delivery = '{other}' is not 'at_least_once' or 'exactly_once'")),
        };
        let context = Deliveries::default();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &brokers).set("linger.ms", "5").set("enable.idempotence", "true");
        if exactly_once {
            config.set(
                "transactional.id",
                option("transactional_id").unwrap_or_else(|| format!("frameflow-{}", spec.name)),
            );
        }
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(context.clone())
            .map_err(|e| format!("cannot connect to Kafka at {brokers}: {e}"))?;
        if exactly_once {
            // Fences an earlier run's producer and aborts its open transaction.
            producer.init_transactions(TIMEOUT).map_err(|e| format!("cannot start Kafka transactions: {e}"))?;
            producer.begin_transaction().map_err(|e| format!("cannot begin a Kafka transaction: {e}"))?;
        }
        let key_columns = schema
            .metadata()
            .get(engine::columnar::KEY_METADATA)
            .map(|k| k.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let written = match position {
            Some(position) => written_since(&brokers, &topic, position)?,
            None => HashSet::new(),
        };
        let resumed_from = position.map(str::to_owned);
        Ok(Box::new(KafkaSink {
            producer,
            topic,
            view: spec.input.clone(),
            key_columns,
            exactly_once,
            context,
            written,
            resumed_from,
        }))
    }
}

/// The keys of the rows written (and, for a `read_committed` reader,
/// committed) after `position`: those a resumed job writes again, and
/// skips.
fn written_since(brokers: &str, topic: &str, position: &str) -> Result<HashSet<String>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "frameflow-sink-resume")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| format!("cannot connect to Kafka at {brokers}: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    let mut left = HashSet::new();
    for (partition, offset) in parse_offsets(position)? {
        assignment.add_partition_offset(topic, partition, Offset::Offset(offset)).map_err(|e| format!("{e}"))?;
        left.insert(partition);
    }
    let mut keys = HashSet::new();
    if left.is_empty() {
        return Ok(keys);
    }
    consumer.assign(&assignment).map_err(|e| format!("cannot read `{topic}` back: {e}"))?;
    let deadline = Instant::now() + TIMEOUT * 3;
    // Read until every partition reports its end, as fetched: the latest
    // offset a broker lists may fall short of it (tansu's does).
    while !left.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("cannot read `{topic}` back to its end after a restart"));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                left.remove(&partition);
            }
            Some(message) => {
                let message = message.map_err(|e| format!("cannot read `{topic}` back: {e}"))?;
                if let Some(key) = message.key() {
                    keys.insert(String::from_utf8_lossy(key).into_owned());
                }
            }
            None => {}
        }
    }
    Ok(keys)
}

/// `0:12,1:40` as partitions and offsets.
fn parse_offsets(position: &str) -> Result<Vec<(i32, i64)>, String> {
    position
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (partition, offset) = p.split_once(':').ok_or_else(|| format!("bad sink position `{position}`"))?;
            Ok((
                partition.parse().map_err(|_| format!("bad sink position `{position}`"))?,
                offset.parse().map_err(|_| format!("bad sink position `{position}`"))?,
            ))
        })
        .collect()
}

struct KafkaSink {
    producer: BaseProducer<Deliveries>,
    topic: String,
    view: String,
    key_columns: Vec<String>,
    exactly_once: bool,
    context: Deliveries,
    /// After a restart: keys of the rows written since the checkpoint,
    /// which the job writes again and which are skipped.
    written: HashSet<String>,
    /// The position resumed from: while rows written before the restart
    /// are still to be skipped, a checkpoint records this position, so that
    /// a job restarted again reads them again.
    resumed_from: Option<String>,
}

impl KafkaSink {
    /// The row's stable key.
    fn key(&self, record: &Record, json: &str) -> String {
        let hash = match record {
            Record::Detection(d) => stable_hash(&[
                d.frame_id.as_bytes(),
                d.operator.as_bytes(),
                d.label.as_bytes(),
                &[d.x, d.y, d.w, d.h].map(f32::to_le_bytes).concat(),
            ]),
            Record::Outcome(o) => stable_hash(&[o.frame_id.as_bytes(), o.stage.as_bytes()]),
            Record::View(row) if !self.key_columns.is_empty() => {
                let values: Vec<String> =
                    self.key_columns.iter().map(|c| row.get(c).map(|v| format!("{v:?}")).unwrap_or_default()).collect();
                stable_hash(&[self.view.as_bytes(), values.join("\u{0}").as_bytes()])
            }
            Record::View(_) => stable_hash(&[self.view.as_bytes(), json.as_bytes()]),
        };
        format!("{hash:016x}")
    }

    /// Waits until every row sent is delivered.
    fn deliver(&mut self) -> Result<(), String> {
        self.producer.flush(TIMEOUT).map_err(|e| format!("cannot deliver to `{}`: {e}", self.topic))?;
        self.failed()
    }

    fn failed(&self) -> Result<(), String> {
        match self.context.failure.lock().ok().and_then(|f| f.clone()) {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        for record in records {
            let json = record.to_json().map_err(|e| format!("cannot encode a row: {e}"))?;
            let key = self.key(record, &json);
            if !self.written.is_empty() && self.written.remove(&key) {
                continue;
            }
            let mut row = BaseRecord::to(&self.topic).key(&key).payload(&json);
            loop {
                match self.producer.send(row) {
                    Ok(()) => break,
                    // The producer's queue is full: wait for deliveries.
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                        row = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(format!("cannot send a row to `{}`: {e}", self.topic)),
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        self.failed()
    }

    /// Serves delivery reports without waiting for them: waiting on every
    /// batch would cost a round trip to the broker per batch. Rows are
    /// waited for at checkpoints and at the end; between them, librdkafka's
    /// bounded queue (`send` waits when it is full) is what is in flight.
    fn flush(&mut self) -> Result<(), String> {
        self.producer.poll(Duration::ZERO);
        self.failed()
    }

    /// Where the topic's partitions end once this checkpoint's rows are in.
    fn checkpoint(&mut self) -> Result<Option<String>, String> {
        self.deliver()?;
        if self.exactly_once {
            self.producer.commit_transaction(TIMEOUT).map_err(|e| format!("cannot commit to `{}`: {e}", self.topic))?;
            self.producer.begin_transaction().map_err(|e| format!("cannot begin a Kafka transaction: {e}"))?;
        }
        if let Some(from) = self.resumed_from.as_ref().filter(|_| !self.written.is_empty()) {
            return Ok(Some(from.clone()));
        }
        let client = self.producer.client();
        let metadata = client.fetch_metadata(Some(&self.topic), TIMEOUT).map_err(|e| format!("{e}"))?;
        let mut ends = Vec::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) =
                client.fetch_watermarks(&self.topic, partition.id(), TIMEOUT).map_err(|e| format!("{e}"))?;
            ends.push(format!("{}:{high}", partition.id()));
        }
        Ok(Some(ends.join(",")))
    }

    fn close(&mut self) -> Result<(), String> {
        self.deliver()?;
        if self.exactly_once {
            self.producer.commit_transaction(TIMEOUT).map_err(|e| format!("cannot commit to `{}`: {e}", self.topic))?;
        }
        Ok(())
    }
}
