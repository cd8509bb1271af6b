CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE STREAM people AS SELECT * FROM d WHERE label = 'person';
CREATE STREAM confident_people AS SELECT * FROM people WHERE confidence > 0.6;
CREATE SINK out FROM confident_people INTO STDOUT;
