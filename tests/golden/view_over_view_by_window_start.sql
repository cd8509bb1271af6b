-- A view over a view: 5-second counts per camera and label, then 20-second
-- windows over those rows by their window_start. The direct 20-second
-- count is beside it: `total` must equal `direct` for every window.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW fine AS
  SELECT source_id, label, window_start, window_end, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '5' SECOND) GROUP BY source_id, label, window_start, window_end;
CREATE VIEW coarse AS
  SELECT source_id, window_start, sum(n) AS total, max(n) AS busiest, count(*) AS slices
  FROM TUMBLE(fine, window_start, INTERVAL '20' SECOND) WHERE label = 'person'
  GROUP BY source_id, window_start;
CREATE VIEW direct AS
  SELECT source_id, window_start, count(*) AS direct
  FROM TUMBLE(d, event_time, INTERVAL '20' SECOND) WHERE label = 'person'
  GROUP BY source_id, window_start;
CREATE SINK c FROM coarse INTO STDOUT;
CREATE SINK x FROM direct INTO STDOUT;
