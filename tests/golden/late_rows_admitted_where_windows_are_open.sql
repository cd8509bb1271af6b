-- The row at 00:02 arrives after the one at 00:11, 9 s behind its camera's
-- newest with 2 s allowed: late. Admitted at the camera's watermark
-- (00:09), it still counts in the 30-second window [00:00, 00:30), but the
-- 5-second window [00:00, 00:05) ended before it: that view dead-letters
-- it, naming the window.
CREATE SOURCE d FROM DETECTIONS 'data/late.jsonl' WITH (lateness = '2s', late = 'admit');
CREATE VIEW short AS
  SELECT window_start, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '5' SECOND) GROUP BY window_start;
CREATE VIEW long AS
  SELECT window_start, count(*) AS long_n FROM TUMBLE(d, event_time, INTERVAL '30' SECOND) GROUP BY window_start;
CREATE SINK s FROM short INTO STDOUT;
CREATE SINK l FROM long INTO STDOUT;
CREATE SINK dead FROM dead_letter INTO STDOUT;
