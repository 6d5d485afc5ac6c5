"""The engine's floor for deleting by ID over its API: DELETE calls for the given
containers, then the given images, with N concurrent keep-alive connections. No
planning, no re-checks, no force. Prints the wall time and the answers.

    python3 bench/api_floor.py SOCKET JOBS < ids   (containers, a blank line, images)
"""
import http.client
import socket
import sys
import threading
import time

sock_path, jobs = sys.argv[1], int(sys.argv[2])
groups = sys.stdin.read().split("\n\n")
containers = groups[0].split()
images = groups[1].split() if len(groups) > 1 else []


class UnixConnection(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost")

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sock_path)


answers = {}
lock = threading.Lock()


def delete_all(paths):
    pending = iter(paths)

    def work():
        conn = UnixConnection()
        while True:
            with lock:
                path = next(pending, None)
            if path is None:
                return
            conn.request("DELETE", path)
            response = conn.getresponse()
            response.read()
            with lock:
                answers[response.status] = answers.get(response.status, 0) + 1

    threads = [threading.Thread(target=work) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


start = time.time()
delete_all([f"/v1.41/containers/{id}" for id in containers])
for id in images:  # one at a time: children before parents
    delete_all([f"/v1.41/images/{id}"])
print(f"{time.time() - start:.3f} {answers}")
