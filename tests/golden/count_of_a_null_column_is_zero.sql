-- Object detections carry no text: count(text) counts none of them.
CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT window_start, count(*) AS all_rows, count(text) AS with_text, min(label) AS first_label
  FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE)
  GROUP BY window_start;
CREATE SINK out FROM v INTO STDOUT;
