CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW counts AS
  SELECT window_start, count(*) FROM TUMBLE(d, event_time, INTERVAL '10' SECOND) GROUP BY window_start;
CREATE SINK out FROM count INTO STDOUT;
