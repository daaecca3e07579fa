// Command wanlink is a benchmark helper: a TCP proxy that gives a registry
// on this machine the bandwidth of a link to a remote region. Every
// connection through one wanlink shares one token bucket, as uploads to one
// region share one network path. It prints its listen address and runs until
// killed.
//
//	wanlink -to 127.0.0.1:5000 -rate 40   # 40 MiB/s each way
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// bucket is a token bucket shared by every connection of one link.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	tokens float64
	last   time.Time
}

// take blocks until n bytes may pass.
func (b *bucket) take(n int) {
	b.mu.Lock()
	now := time.Now()
	b.tokens += now.Sub(b.last).Seconds() * b.rate
	if burst := b.rate / 20; b.tokens > burst { // at most 50 ms of burst
		b.tokens = burst
	}
	b.last = now
	b.tokens -= float64(n)
	wait := time.Duration(0)
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	time.Sleep(wait)
}

func pipe(dst io.Writer, src io.Reader, b *bucket) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b.take(n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	to := flag.String("to", "", "address of the server behind the link")
	rate := flag.Float64("rate", 40, "link bandwidth in MiB/s, each direction")
	flag.Parse()
	if *to == "" {
		fmt.Fprintln(os.Stderr, "wanlink: -to is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	go func() { <-ctx.Done(); ln.Close() }()
	up := &bucket{rate: *rate * (1 << 20), last: time.Now()}
	down := &bucket{rate: *rate * (1 << 20), last: time.Now()}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", *to)
			if err != nil {
				return
			}
			defer s.Close()
			done := make(chan struct{}, 2)
			go func() { pipe(s, c, up); s.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			go func() { pipe(c, s, down); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}
