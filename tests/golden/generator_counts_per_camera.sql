-- Synthetic detections: 600 rows at 100 per second over three cameras.
CREATE SOURCE g FROM GENERATOR WITH (rate = 100, count = 600, cameras = 3, labels = 'person,car', seed = 3);
CREATE VIEW v AS
  SELECT source_id, label, window_start, count(*) AS n, round(avg(confidence), 3) AS conf
  FROM TUMBLE(g, event_time, INTERVAL '2' SECOND)
  GROUP BY source_id, label, window_start;
CREATE SINK out FROM v INTO STDOUT;
