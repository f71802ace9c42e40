"""Readers turn files of many shapes into `Conversation`s (DESIGN §1).

Interface (the CLI, the service and the batch layer only use these two functions):

- ``read_path(path, input_format=None, **options) -> Iterator[Conversation | InputError]``
  yields one item per conversation found in the file (a JSONL or CSV file may hold many); a bad record
  yields an `InputError` naming file, place and reason, and reading goes on with the next record.
- ``iter_paths(paths) -> Iterator[Path]`` expands folders recursively into readable files.
"""
