-- The quickstart's view over stored detections.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW counts AS
  SELECT source_id, label, window_start, window_end, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '10' SECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE SINK out FROM counts INTO STDOUT;
