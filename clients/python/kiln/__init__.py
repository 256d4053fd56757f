"""A thin layer over the generated ``kiln_client``: submit a job file and wait for it.

    from kiln import Kiln
    job = Kiln("http://127.0.0.1:7878", token).submit("job.yaml").wait()
    assert job.state == "SUCCEED"

Everything else of the REST API is in ``kiln_client.api`` (one module per operation), with the
same ``AuthenticatedClient`` (``Kiln(...).client``).
"""

from __future__ import annotations

import time
import uuid
from os import PathLike
from typing import Union

from kiln_client import AuthenticatedClient
from kiln_client.api.jobs import delete_job, retry, show_job, terminate
from kiln_client.models import ErrorBody, JobDetail, SubmitResponse

__all__ = ["Job", "Kiln", "KilnError", "TERMINAL"]

#: States a job does not leave.
TERMINAL = frozenset({"SUCCEED", "FAILED", "FAILED_INTERRUPTED"})


class KilnError(Exception):
    """An error answer of the API: its status, ``code``, ``message`` and ``field``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(f"{status} {code}: {message}" + (f" ({field})" if field else ""))
        self.status, self.code, self.message, self.field = status, code, message, field


def _check(result, status: int = 0):
    if isinstance(result, ErrorBody):
        e = result.error
        field = e.field if isinstance(e.field, str) else None
        raise KilnError(status, e.code, e.message, field)
    return result


class Kiln:
    """A Kiln server at ``url``, called with the bearer ``token``."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        import httpx

        self.client = AuthenticatedClient(
            base_url=url.rstrip("/"),
            token=token.strip(),
            timeout=httpx.Timeout(timeout),
            raise_on_unexpected_status=True,
        )

    def submit(
        self,
        spec: Union[str, bytes, PathLike],
        idempotency_key: str | None = None,
    ) -> "Job":
        """Submits a job spec: a file path, or the spec's text (YAML or JSON, native or
        Tencent format). The request carries an ``Idempotency-Key`` (a fresh one unless given),
        and is sent once more if the connection fails, without the risk of a second job."""
        if isinstance(spec, bytes):
            body = spec
        elif isinstance(spec, str) and ("\n" in spec or spec.lstrip().startswith("{")):
            body = spec.encode()
        else:
            with open(spec, "rb") as f:
                body = f.read()
        json_like = body.lstrip().startswith(b"{")
        headers = {
            "Content-Type": "application/json" if json_like else "application/yaml",
            "Idempotency-Key": idempotency_key or f"py-{uuid.uuid4()}",
        }
        import httpx

        http = self.client.get_httpx_client()
        try:
            resp = http.post("/v1/jobs", content=body, headers=headers)
        except httpx.TransportError:
            resp = http.post("/v1/jobs", content=body, headers=headers)
        if resp.status_code != 201:
            _check(ErrorBody.from_dict(resp.json()), resp.status_code)
        answer = SubmitResponse.from_dict(resp.json())
        return Job(self, answer.id, answer.name)

    def job(self, job_id: str) -> "Job":
        """A job already submitted."""
        return Job(self, job_id)


class Job:
    """A submitted job."""

    def __init__(self, kiln: Kiln, job_id: str, name: str | None = None):
        self.kiln, self.id, self.name = kiln, job_id, name

    def show(self) -> JobDetail:
        """The job now, with its tasks."""
        r = show_job.sync_detailed(self.id, client=self.kiln.client)
        return _check(r.parsed, r.status_code)

    @property
    def state(self) -> str:
        return self.show().state

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> JobDetail:
        """Polls until the job is SUCCEED, FAILED or FAILED_INTERRUPTED and returns it;
        ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            detail = self.show()
            if detail.state in TERMINAL:
                return detail
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} is still {detail.state}")
            time.sleep(poll)

    def terminate(self):
        r = terminate.sync_detailed(self.id, client=self.kiln.client)
        return _check(r.parsed, r.status_code)

    def retry(self):
        r = retry.sync_detailed(self.id, client=self.kiln.client)
        return _check(r.parsed, r.status_code)

    def delete(self) -> None:
        r = delete_job.sync_detailed(self.id, client=self.kiln.client)
        if r.status_code != 204:
            _check(r.parsed, r.status_code)

    def logs(self, task: str, index: int = 0, stream: str = "stdout") -> str:
        """The output of an instance's latest attempt."""
        resp = self.kiln.client.get_httpx_client().get(
            f"/v1/jobs/{self.id}/tasks/{task}/instances/{index}/logs",
            params={"stream": stream},
        )
        if resp.status_code != 200:
            _check(ErrorBody.from_dict(resp.json()), resp.status_code)
        return resp.text
