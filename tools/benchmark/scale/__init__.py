"""The scale benchmark (`make bench ARGS="--scale 10k,100k,1m"`): the system measured on
loads of 10k, 100k and 1M users (50k, 500k, 5M orders), on SQLite and on PostgreSQL.

- `sizes`: the sizes and `--scale`; `plan`: who the data holds (seeded: the same every run);
  `records`: its rows, built with the services' own codecs
- `store`: the interface of a kind of database and of one being loaded; `sqlite_store`,
  `postgres_store`: one each; `completion`: the mark of a complete (reusable) load;
  `disk`: free disk checked first; `loader`: one size loaded, each part timed
- `serving`: the system started on a load; `paging`: deep page tokens got by paging;
  `rows`: the request rows; `results`: scale.json and its Markdown; `plot`: its picture,
  scale.svg; `runner`: the order of the run and its sections (the place for the issue's
  other parts)
"""
