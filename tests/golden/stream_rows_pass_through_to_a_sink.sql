CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl' WITH (tenant = 'acme');
CREATE SINK out FROM d INTO STDOUT;
