"""On-device latency measurement for kerasnets TFLite models.

The last stage of the pipeline (builders -> QAT -> converter -> ``.tflite`` -> device benchmark
-> records -> report). ``benchmark.py`` drives the TFLite ``benchmark_model`` tool on Android
devices over adb (or times the model on this host with LiteRT, ``--target local``) and appends
one JSON record per (device, model, threads, delegate); ``report.py`` turns the records into
tables and plots. Their command lines are ``kerasnets.cli.bench`` and ``kerasnets.cli.report``.
Nothing here imports the model builders or the converter: the only input is the ``.tflite`` file
(and, for the Pareto chart, the converter's ``report.json``).

Modules:
    adb        -- the adb client wrapper: device listing, shell, push, getprop, error texts.
    parse      -- parser for every ``benchmark_model`` output format seen on real devices.
    modelinfo  -- sha256, size and precision of a ``.tflite`` file; ABI of an ELF binary.
    device     -- one device's side of a run: binary install, model push, benchmark_model runs.
    records    -- the record fields, the JSONL writer and reader.
    local      -- the same measurement on this host with the LiteRT Interpreter.
    benchmark  -- every (device, model, threads, delegate): push, run, parse, record.
    report     -- records aggregated into tables and plots.
"""
