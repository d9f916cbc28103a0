using System.Text.Json;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using Xunit.Abstractions;

namespace Beit.Tests.Serving;

/// <summary>
/// The page at <c>/</c> in a real headless browser: Debian's <c>chromium</c> driven through <c>chromium-driver</c>
/// (both from apt; <c>.ci/run</c> installs them). The test chooses a fixture image, waits for the panel to finish,
/// checks the DOM against the API, and saves screenshots under the test output folder (<c>artifacts/</c>).
/// </summary>
[Trait("Category", "Slow")]
public sealed class ServePageBrowserTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium", ChromeDriver = "/usr/bin/chromedriver";

    /// <summary>Where the screenshots go: <c>artifacts/</c> in the test output folder.</summary>
    private static string Artifacts => Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "artifacts")).FullName;

    private static ChromeDriver StartBrowser(string profile)
    {
        Assert.True(File.Exists(Chromium) && File.Exists(ChromeDriver), $"{Chromium} and {ChromeDriver} are needed: apt-get install chromium chromium-driver");
        var options = new ChromeOptions { BinaryLocation = Chromium };
        options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            "--window-size=1100,900", "--user-data-dir=" + profile);
        // The driver named explicitly, so Selenium Manager never looks for (or downloads) one.
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromeDriver)!, Path.GetFileName(ChromeDriver));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(120));
    }

    /// <summary>Chooses <paramref name="image"/> in the page's file input and waits until the panel reports done (or error).</summary>
    private static IWebElement Upload(ChromeDriver browser, Uri page, string image, string panel)
    {
        browser.Navigate().GoToUrl(page);
        var wait = new WebDriverWait(browser, TimeSpan.FromSeconds(60));
        wait.Until(b => b.FindElement(By.Id("model-info")).Text.Contains("labels"));
        browser.FindElement(By.Id("file-input")).SendKeys(image);
        var section = wait.Until(b => b.FindElements(By.CssSelector($"#panel-{panel}[data-state='done'], #panel-{panel}[data-state='error']")).FirstOrDefault());
        Assert.Equal("done", section!.GetAttribute("data-state"));
        // The status is final once every panel has finished (the attention panel may still be running).
        wait.Until(b => b.FindElement(By.Id("status")).Text is "Done." || b.FindElement(By.Id("status")).Text.StartsWith("Failed", StringComparison.Ordinal));
        Assert.Equal("Done.", browser.FindElement(By.Id("status")).Text);
        return section;
    }

    /// <summary>The page's <c>(100 * p).toFixed(1) + " %"</c>, from the same double the page parses out of the JSON.</summary>
    private static string Percent(double p) => (100 * p).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + " %";

    private void Screenshot(ChromeDriver browser, string name, string? alsoTo = null)
    {
        var shot = browser.GetScreenshot();
        string path = Path.Combine(Artifacts, name);
        shot.SaveAsFile(path);
        output.WriteLine($"screenshot: {path}");
        if (alsoTo != null)
        {
            File.Copy(path, alsoTo, overwrite: true);
            output.WriteLine($"screenshot: {alsoTo}");
        }
    }

    /// <summary>
    /// README's screenshots, <c>docs/images/serve-page*.png</c>, are rewritten by this test when it is missing or when
    /// <c>BEIT_UPDATE_SCREENSHOTS=1</c> (so ordinary runs leave the working tree clean).
    /// </summary>
    private static string? DocsScreenshot(string name)
    {
        string repository = Path.GetFullPath(Path.Combine(Fixtures.Root, "..", "..", ".."));
        string path = Path.Combine(repository, "docs", "images", name);
        if (File.Exists(path) && Environment.GetEnvironmentVariable("BEIT_UPDATE_SCREENSHOTS") != "1") return null;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }

    [Fact]
    public void TheClassificationPageShowsTheTopFiveBarsOfBeitPredict()
    {
        using var dir = new TempDir();
        string zip = dir.Combine("classifier.zip"), image = Fixtures.Preproc("chelsea.png");
        ServeImages.Run("package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", zip);
        var expected = ServeImages.PredictJson(zip, 5, [image])[image];
        using var server = ServeProcess.Start(zip);
        using (var browser = StartBrowser(dir.Combine("profile")))
        {
            var section = Upload(browser, server.BaseAddress, image, "classification");
            var rows = section.FindElements(By.CssSelector("ol.bars li"));
            Assert.Equal(expected.Select(p => p.Label), rows.Select(r => r.GetAttribute("data-label")));
            Assert.Equal(expected.Select(p => Percent(double.Parse(p.Probability.ToString("R")))), rows.Select(r => r.FindElement(By.CssSelector(".value")).Text));
            // The longest bar is the top label's, and bars shrink down the list.
            var widths = rows.Select(r => r.FindElement(By.CssSelector(".fill")).Size.Width).ToList();
            Assert.Equal(widths.OrderByDescending(w => w), widths);
            Assert.True(widths[0] > 0);
            Assert.Contains("image-classification", browser.FindElement(By.Id("model-info")).Text);
            Screenshot(browser, "serve-page-classification.png", DocsScreenshot("serve-page.png"));
            browser.Quit();
        }
    }

    [Fact]
    public async Task TheSegmentationPageShowsTheOverlayAndTheLegendOfTheApi()
    {
        using var dir = new TempDir();
        string zip = dir.Combine("segmenter.zip"), image = Fixtures.Preproc("chelsea.png");
        ServeImages.Run("package", Fixtures.Tiny("seg_uper"), "--task", "semantic-segmentation", "--out", zip);
        using var server = ServeProcess.Start(zip);
        var content = new ByteArrayContent(File.ReadAllBytes(image));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        using var summary = JsonDocument.Parse(await (await server.Client.PostAsync("v1/segment", content)).Content.ReadAsStringAsync());
        var classes = summary.RootElement.GetProperty("classes").EnumerateArray().ToList();
        var decoded = Microsoft.ML.Beit.Processing.ImageDecoder.Decode(image);
        using (var browser = StartBrowser(dir.Combine("profile")))
        {
            var section = Upload(browser, server.BaseAddress, image, "segmentation");
            var overlay = section.FindElement(By.Id("overlay"));
            // The overlay PNG decoded in the browser, at the image's own size.
            Assert.Equal(decoded.Width.ToString(), overlay.GetAttribute("naturalWidth"));
            Assert.Equal(decoded.Height.ToString(), overlay.GetAttribute("naturalHeight"));
            var legend = section.FindElements(By.CssSelector("ul.legend li"));
            Assert.Equal(classes.Select(c => c.GetProperty("label").GetString()), legend.Select(l => l.GetAttribute("data-label")));
            Assert.Equal(classes.Select(c => Percent(c.GetProperty("fraction").GetDouble())), legend.Select(l => l.FindElement(By.CssSelector(".value")).Text));
            Screenshot(browser, "serve-page-segmentation.png", DocsScreenshot("serve-page-segmentation.png"));
            browser.Quit();
        }
    }
}
