"""A first Mayfly task: read the payload, print a few lines, write a result."""

import json
import os
import platform

with open(os.environ["MAYFLY_PAYLOAD_FILE"]) as f:
    payload = json.load(f)

name = payload.get("name", "world")
n = int(payload.get("n", 3))
print(f"hello, {name}! task {os.environ['MAYFLY_TASK_ID']} attempt {os.environ['MAYFLY_ATTEMPT']}")
print(f"running as uid {os.getuid()} on Python {platform.python_version()} in {os.getcwd()}")
squares = [i * i for i in range(n)]
print(f"the first {n} squares: {squares}")

# Whatever lands in /mayfly/result.json is kept with the task (task show --json → "result").
with open("/mayfly/result.json", "w") as f:
    json.dump({"greeting": f"hello, {name}", "squares": squares}, f)
