CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT window_start, sum(label) FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE) GROUP BY window_start;
