-- A view over a projected stream groups and sums its computed column, by
-- the event_time it selected; a stream over it filters on that column.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE STREAM boxes AS SELECT source_id, label, w * h AS area, event_time FROM d;
CREATE STREAM big AS SELECT * FROM boxes WHERE area > 10000;
CREATE VIEW v AS
  SELECT source_id, window_start, count(*) AS n, max(area) AS largest, min(label) AS first_label
  FROM TUMBLE(big, event_time, INTERVAL '10' SECOND) GROUP BY source_id, window_start;
CREATE SINK out FROM v INTO STDOUT;
