package realnode

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/testenv"
)

// hostProbe is the script of a pod that reports the Secret it mounts (as a
// backup CronJob's credentials), which network namespace it is in and
// whether it reaches the env's MariaDB (its handshake names the server),
// MongoDB (FerretDB: the connection is accepted) and S3 (an HTTP answer),
// all listening on 127.0.0.1 of the host.
func hostProbe(mariadb, mongo, s3 string) string {
	mh, mp, _ := net.SplitHostPort(mariadb)
	gh, gp, _ := net.SplitHostPort(mongo)
	return fmt.Sprintf(`echo "secret $(cat /creds/token)"
echo "netns $(readlink /proc/self/ns/net)"
echo "mariadb $(nc %s %s </dev/null 2>&1 | strings | head -n 1)"
if nc %s %s </dev/null; then echo "mongo connected"; else echo "mongo unreachable"; fi
echo "s3 $(wget -S -O /dev/null %s/ 2>&1 | grep -m 1 'HTTP/')"
exit 0
`, mh, mp, gh, gp, s3)
}

// TestPodsReachHostServers: a pod with hostNetwork: true on node-a0 and on
// node-b0, running the busybox base image pulled from the region's
// localhost:5000, is in the host's network namespace and reaches the test
// MariaDB, MongoDB and S3 servers on 127.0.0.1, as the backup CronJobs must
// (region A's the primary MariaDB and MongoDB, region B's the DR ones). A
// pod on the pod network is in a namespace of its own and reaches none of
// them: its 127.0.0.1 is its own.
func TestPodsReachHostServers(t *testing.T) {
	t.Parallel()
	v := testenv.Require(t, "SLIPWAY_TEST_MARIADB_PRIMARY_ADDR", "SLIPWAY_TEST_MARIADB_DR_ADDR",
		"SLIPWAY_TEST_MONGO_PRIMARY_URI", "SLIPWAY_TEST_MONGO_DR_URI", "SLIPWAY_TEST_S3_ENDPOINT")
	mongoAddr := func(uri string) string {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatalf("mongo URI %q: %v", uri, err)
		}
		return u.Host
	}
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range []struct {
		name           string
		node           func(testing.TB) *node
		mariadb, mongo string
	}{
		{"region a", requireNode, v[0], mongoAddr(v[2])},
		{"region b", requireNodeB, v[1], mongoAddr(v[3])},
	} {
		t.Run(site.name, func(t *testing.T) {
			t.Parallel()
			n := site.node(t)
			im := pushImage(t, n, "hostnet")
			image := n.RegistryName + "/" + im.Repo + "@" + im.Digest
			script := hostProbe(site.mariadb, site.mongo, v[4])
			for _, hostNet := range []bool{true, false} {
				t.Run(fmt.Sprintf("hostNetwork=%v", hostNet), func(t *testing.T) {
					t.Parallel()
					token := "probe-" + randHex(8)
					logs, pod := probePod(t, n, image, script, token, hostNet)
					if pod.Spec.NodeName != n.Name {
						t.Errorf("pod on node %q, want %s", pod.Spec.NodeName, n.Name)
					}
					if id := pod.Status.ContainerStatuses[0].ImageID; !strings.HasSuffix(id, "/"+im.Repo+"@"+im.Digest) {
						t.Errorf("imageID %q, want the pushed %s@%s", id, im.Repo, im.Digest)
					}
					lines := map[string]string{}
					for _, l := range strings.Split(logs, "\n") {
						k, val, _ := strings.Cut(l, " ")
						lines[k] = val
					}
					reached := map[string]bool{
						"the host's network namespace": lines["netns"] == hostNS,
						"MariaDB " + site.mariadb:      strings.Contains(lines["mariadb"], "MariaDB"),
						"MongoDB " + site.mongo:        lines["mongo"] == "connected",
						"S3 " + v[4]:                   strings.Contains(lines["s3"], "HTTP/1.1 "),
					}
					for what, ok := range reached {
						if ok != hostNet {
							t.Errorf("pod with hostNetwork %v: in or reaching %s is %v, want %v", hostNet, what, ok, hostNet)
						}
					}
					if lines["secret"] != token {
						t.Errorf("the pod read %q from its Secret volume, want %q", lines["secret"], token)
					}
					if t.Failed() {
						t.Logf("pod log (host netns %s):\n%s", hostNS, logs)
					}
				})
			}
		})
	}
}

// probePod runs script in a pod of image on n, with or without the host's
// network and with a Secret holding token mounted at /creds, until it ends;
// it returns the pod's log and the ended pod.
func probePod(t *testing.T, n *node, image, script, token string, hostNet bool) (string, *corev1.Pod) {
	t.Helper()
	ns := createNamespace(t, n, "hostnet")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"token": token}}
	if _, err := n.Core.CoreV1().Secrets(ns).Create(context.Background(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// What a backup CronJob's pod template needs on the test nodes:
	// hostNetwork, dnsPolicy Default (no cluster DNS here; the addresses
	// are IPs), the real node's selector and toleration. The kubelet reads
	// the Secret as system:node:NAME.
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: %s}
spec:
  hostNetwork: %v
  dnsPolicy: Default
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
%s  containers:
  - name: probe
    image: %s
    command: [/bin/sh, -c, %q]
    volumeMounts: [{name: creds, mountPath: /creds, readOnly: true}]
  volumes: [{name: creds, secret: {secretName: creds}}]
`, ns, hostNet, n.placement("  "), image, script)
	pod := runPod(t, n, ns, "probe", manifest, 3*time.Minute)
	if pod.Status.Phase != corev1.PodSucceeded || len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s/probe %s, want Succeeded: %+v", ns, pod.Status.Phase, pod.Status)
	}
	logs, err := kubectl(t, n, "-n", ns, "logs", "probe")
	if err != nil {
		t.Fatalf("kubectl logs: %v\n%s", err, logs)
	}
	return logs, pod
}
