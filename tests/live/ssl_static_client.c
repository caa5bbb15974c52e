/* a TLS client with OpenSSL linked in: N requests on new connections, 0.3 s apart */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = atoi(argv[1]), n = atoi(argv[2]);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) return 2;
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, s);
        if (SSL_connect(ssl) != 1) return 3;
        char req[64], buf[4096];
        int len = snprintf(req, sizeof req, "GET /static/%d HTTP/1.0\r\n\r\n", i);
        SSL_write(ssl, req, len);
        int got, total = 0;
        while ((got = SSL_read(ssl, buf, sizeof buf)) > 0) total += got;
        printf("%d\n", total);
        fflush(stdout);
        SSL_free(ssl);
        close(s);
        usleep(300000);
    }
    return 0;
}
