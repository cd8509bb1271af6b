CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT window_start, count(*) FROM HOPP(d, event_time, INTERVAL '10' SECOND, INTERVAL '1' MINUTE) GROUP BY window_start;
