"""The Python client against a live ``kiln server`` (KILN_URL, KILN_TOKEN), run by
crates/kiln/tests/python_client.rs."""

import os
import sys
import tempfile

from kiln import Kiln, KilnError
from kiln_client.api.jobs import list_jobs
from kiln_client.api.task_templates import create_template, show_template
from kiln_client.models import TaskTemplate, TaskTemplateTask

URL, TOKEN = os.environ["KILN_URL"], os.environ["KILN_TOKEN"]
k = Kiln(URL, TOKEN)

# The convenience layer: a YAML file to SUCCEED, its output, an idempotent retry.
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    f.write("name: py-hello\ntasks:\n  a:\n    instances: 2\n    command: echo hi $BATCH_TASK_INSTANCE_INDEX\n")
job = k.submit(f.name, idempotency_key="py-test-1")
done = job.wait(timeout=60)
assert done.state == "SUCCEED", done
assert job.logs("a", 1) == "hi 1\n", job.logs("a", 1)
again = k.submit(f.name, idempotency_key="py-test-1")
assert again.id == job.id, (again.id, job.id)

# A JSON spec in Tencent's format, and an invalid spec's error naming its field.
tencent = '{"JobName": "py-tencent", "Tasks": [{"TaskName": "t", "Application": {"Command": "true", "DeliveryForm": "LOCAL"}}]}'
assert k.submit(tencent).wait(timeout=60).state == "SUCCEED"
try:
    k.submit("name: bad\ntasks:\n  a:\n    instances: 0\n    command: 'true'\n")
    sys.exit("an invalid spec was accepted")
except KilnError as e:
    assert e.status == 400 and e.code == "invalid_spec" and "instances" in (e.field or ""), e

# The generated client directly.
page = list_jobs.sync(client=k.client, limit=1)
assert len(page.items) == 1 and page.next_, page
body = TaskTemplate(name="py-base", task=TaskTemplateTask.from_dict({"command": "true"}), description=None)
created = create_template.sync(client=k.client, body=body)
assert created.name == "py-base", created
assert show_template.sync("py-base", client=k.client).task.additional_properties == {"command": "true"}
job.delete()
print("python client: 4 passed, 0 failed")
