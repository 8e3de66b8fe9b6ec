// Command ceiling is the yardstick of the ingest benchmark: a bare net/http server that reads
// a beacon the way the collector does and answers 202 without doing anything with it. What
// `glimpse loadgen` achieves against it on a machine is the most any collector could do there.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()
	http.HandleFunc("/api/event", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 16<<10)); err != nil {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "ok")
	})
	log.Printf("ceiling server on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
